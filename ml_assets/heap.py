"""The cyclic garbage collector in a process that has loaded the code location.

Python's full collections scan every object the collector tracks. Once the code location is
loaded, most of those are modules and definitions (Dagster's, ours) that live as long as the
process, and a year's backfill scanned them again and again: on the `make dev` instance, 1.05 s of
a 10.8 s run went to the collector, full collections 0.12-0.14 s each (a run's steps allocate
enough surviving objects to trigger them: parsing, 365 days' frames and metadata). `gc.freeze`
moves the objects alive now out of every later scan; the same run then spent 0.31 s in the
collector. (CPython documents it for a process about to fork workers, as raw_data's range parsing
does: a worker's collections then leave the parent's pages unwritten.)

Loading the code location itself paid two full collections (0.06-0.09 s each, 0.12-0.15 s of the
0.18-0.23 s it took after `import dagster`): one the allocation counts triggered while our modules
imported, scanning the ~110,000 objects `import dagster` leaves, and `freeze_loaded_objects`' own.
Freezing Dagster's objects before our modules import (`exempt_dagster_modules`) leaves both
scanning only ours (~4,000): the load then took 0.05-0.06 s after `import dagster`.

A step that first imports MLflow, skops and matplotlib late (training, after its fit) set off five
full collections there, each rescanning every library the step had imported since the freeze
(0.56-0.73 s of a training run) to find a few thousand garbage objects at most; those blocks run
with the collector paused (`collector_paused`).
"""

import contextlib
import functools
import gc
from collections.abc import Iterator


def exempt_dagster_modules() -> None:
    """Exempt every object alive now (after `import dagster`) from later collections, without
    collecting first: Dagster's import leaves no cyclic garbage (`gc.collect()` right after it finds
    0 objects; ~1,100 after the CLI's `definitions validate` has run), so at most that much is kept
    for the process's life, where a collection first would scan everything Dagster loaded."""
    gc.freeze()


@functools.cache
def freeze_loaded_objects() -> None:
    """Collect what is already garbage, then exempt every object alive now from later collections
    (`gc.freeze`); once a process, on the first load of the code location.

    Collecting first keeps load-time garbage out of the frozen set (a frozen object is never
    collected by the cycle collector; freed by reference counting as usual)."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collections inside the block; the collector back as it was after it.

    For a block that first imports large libraries late in a process: each import's allocations
    count towards a full collection, which scans every object not frozen (a step's data and the
    libraries imported so far) while the imports leave almost no cyclic garbage. What garbage the
    block does leave is collected by the first collection after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
