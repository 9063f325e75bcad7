"""Pools for work over many partitions: threads where the work releases the GIL (Parquet coding,
file writes, S3 requests), forked processes where it does not (parsing CSV into pandas)."""

from __future__ import annotations

import functools
import itertools
import os
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_threads(function: Callable[[T], R], items: Iterable[T], threads: int) -> Iterator[R]:
    """`map` over a pool of threads, results in order; the first exception is raised when reached.

    For work that releases the GIL: Parquet encoding and decoding, file writes with their fsync,
    S3 requests."""
    items = list(items)
    if threads <= 1 or len(items) <= 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        yield from pool.map(function, items)


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last one shorter), taken from `items` only as asked for."""
    pending = iter(items)
    while batch := list(itertools.islice(pending, size)):
        yield batch


def map_threads_ahead(
    function: Callable[[T], R], items: Iterable[T], threads: int, window: int
) -> Iterator[R]:
    """`map_threads` over `window` items at a time, lazily: the next window is read when the
    consumer reaches it. Each window's threads have finished before its first result is given, so a
    consumer may fork worker processes between two results (see `can_fork`)."""
    for batch in _batches(items, window):
        yield from list(map_threads(function, batch, threads))


def fork_refusal() -> str | None:
    """Why worker processes may not be forked from this process now, or None when they may (see
    `can_fork`)."""
    if sys.platform != "linux":
        return f"workers are forked only on Linux, not {sys.platform} (macOS' libraries are not fork-safe)"
    others = threading.active_count() - 1
    if others:
        return f"workers are forked only from a process running no other Python thread; {others} run here"
    return None


def can_fork() -> bool:
    """Whether worker processes may be forked from this process now: on Linux (macOS' system
    libraries are not fork-safe), and only while no other Python thread runs here, since a lock
    another thread holds at the fork stays held in the child for good. `dagster asset materialize`
    (and so `make materialize`) runs steps with no other Python thread; a run the code server starts
    for `dagster dev`'s UI and daemon, and a multiprocess executor's step, run Dagster's termination
    thread beside the step, which then computes in its own process. Native pools
    (Arrow's, OpenMP's) wait idle between calls; a worker that only parses with pandas uses neither."""
    return fork_refusal() is None


# Engines whose pooled connections a forked child must neither use nor close, and (in a child) the
# inherited pools set aside.
_KEPT_FROM_CHILDREN: weakref.WeakSet = weakref.WeakSet()
_SET_ASIDE_IN_CHILD: list = []


def keep_from_forked_children(engine) -> None:
    """Keep a SQLAlchemy engine's pooled connections out of forked children: in a child its pool is
    replaced by an empty one (SQLAlchemy's recipe, `dispose(close=False)`) and the inherited pool
    kept referenced, so its connections are never used or closed there: they are the parent's
    sessions (Postgres), and SQLite forbids touching a parent's connection in a child, closing
    included (the multiprocessing children `raw_data` forks leave with os._exit). A child that
    writes connects on its own."""
    _KEPT_FROM_CHILDREN.add(engine)
    _set_aside_in_forked_children()


def _set_aside_inherited_pools() -> None:
    for engine in list(_KEPT_FROM_CHILDREN):
        _SET_ASIDE_IN_CHILD.append(engine.pool)
        engine.dispose(close=False)


@functools.cache
def _set_aside_in_forked_children() -> None:
    os.register_at_fork(after_in_child=_set_aside_inherited_pools)  # once a process


def worker_processes(wanted: int, items: int, batch_size: int) -> int:
    """Workers a map of `items` items in batches of `batch_size` gets: `wanted`, at most one a
    batch; 0 (this process computes) when one would do or `can_fork()` is false."""
    batches = -(-items // batch_size)
    if wanted <= 1 or batches <= 1 or not can_fork():
        return 0
    return min(wanted, batches)


def _die_with_parent(parent: int) -> None:
    """A worker's initializer: killed when the process that forked it dies, even by SIGKILL (else
    an orphan would wait on its task queue for good)."""
    import ctypes
    import os
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the prctl
        os._exit(1)


def _apply(function: Callable[[T], R], batch: list[T]) -> list[R]:
    return [function(item) for item in batch]


def map_processes(
    function: Callable[[T], R], items: Iterable[T], processes: int, batch_size: int
) -> Iterator[R]:
    """`map` on `processes` forked worker processes, `batch_size` items a task, results in order;
    `processes` 0 computes in this process (see `worker_processes`).

    `items` is consumed as tasks are sent, at most two tasks a worker ahead of the results taken:
    a lazy iterable (files read one by one) is read while the workers compute, and a long range's
    inputs are never all in memory at once. `function` must be importable by name (a module-level
    function) and its arguments and results picklable; an exception it raises is raised here."""
    if processes <= 0:
        yield from map(function, items)
        return
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    # Forked, not spawned: a worker starts in milliseconds with the parent's imports, where a
    # spawned one imports pandas again (~0.8 s a worker, most of what it would save on a year).
    pool = ProcessPoolExecutor(
        processes,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )
    running: deque[Future[list[R]]] = deque()
    try:
        for batch in _batches(items, batch_size):
            running.append(pool.submit(_apply, function, batch))
            if len(running) >= 2 * processes:
                yield from running.popleft().result()
        while running:
            yield from running.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
