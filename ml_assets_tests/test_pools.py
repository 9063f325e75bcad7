"""Thread and process pools: order, laziness, errors, and when work stays in the calling process.

The forked workers are exercised in a fresh interpreter (`in_fresh_process`): this test process may
run other threads by now (MLflow's tqdm monitor, after a training test), and `can_fork` refuses a
fork then, as it should."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ml_assets.pools import can_fork, fork_refusal, map_threads, map_threads_ahead, worker_processes
from ml_assets_tests.integration.servers import REPO


def square_in_worker(n: int) -> tuple[int, int]:
    """n², and the process that computed it; slow enough that every worker gets a task."""
    time.sleep(0.01)
    if n == 7 and os.environ.get("FAIL_ON_SEVEN"):
        raise OSError(f"disk full parsing item {n}")
    return n * n, os.getpid()


def sleep_in_worker(folder: str) -> None:
    """Records this worker's pid in `folder`, then outlives any test."""
    Path(folder, str(os.getpid())).touch()
    time.sleep(120)


def in_fresh_process(script: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


MAP_50 = """
import json, os
from ml_assets.pools import can_fork, map_processes, worker_processes
from ml_assets_tests.test_pools import square_in_worker
pulled = []
def items():
    for n in range(50):
        pulled.append(n)
        yield n
workers = worker_processes(2, 50, 5)
results = map_processes(square_in_worker, items(), workers, 5)
first = next(results)
pulled_before_first = len(pulled)
rest = list(results)
print(json.dumps({"can_fork": can_fork(), "workers": workers, "parent": os.getpid(),
                  "pulled_before_first": pulled_before_first, "results": [first, *rest]}))
"""


def test_map_threads_keeps_order_and_raises_the_first_error():
    assert list(map_threads(lambda n: n * n, range(50), 4)) == [n * n for n in range(50)]
    assert list(map_threads(str, [], 4)) == []

    def fail_on_seven(n: int) -> int:
        if n == 7:
            raise OSError(f"disk full writing part {n}")
        return n

    with pytest.raises(OSError, match="part 7"):
        list(map_threads(fail_on_seven, range(20), 4))


def test_reading_ahead_is_lazy_and_no_reading_thread_outlives_a_window():
    """raw_data forks its parsing workers between two files read ahead: no reading thread may be
    running then, and a range's files are read a window at a time, not all at once."""
    pulled = []

    def items():
        for n in range(23):
            pulled.append(n)
            yield n

    baseline = threading.active_count()
    results = map_threads_ahead(lambda n: n * n, items(), 4, 5)
    assert pulled == []
    seen = []
    for value in results:
        assert threading.active_count() == baseline  # a fork here would be safe
        assert len(pulled) == min(23, (len(seen) // 5 + 1) * 5)  # this window, no further
        seen.append(value)
    assert seen == [n * n for n in range(23)]


def test_workers_only_for_more_than_one_batch_and_never_beside_another_thread(monkeypatch):
    monkeypatch.setattr("ml_assets.pools.can_fork", lambda: True)
    assert worker_processes(4, 365, 16) == 4
    assert worker_processes(4, 40, 16) == 3  # one a batch
    assert worker_processes(4, 16, 16) == 0  # a single batch: this process
    assert worker_processes(1, 365, 16) == 0
    monkeypatch.setattr("ml_assets.pools.can_fork", lambda: False)
    assert worker_processes(4, 365, 16) == 0
    monkeypatch.undo()
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert can_fork() is False
        assert fork_refusal().endswith(f"{threading.active_count() - 1} run here")
    finally:
        release.set()
        other.join()
    monkeypatch.setattr("sys.platform", "darwin")
    assert "only on Linux, not darwin" in fork_refusal()
    assert can_fork() is False


def test_forked_workers_return_results_in_order_and_read_items_lazily():
    done = in_fresh_process(MAP_50)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["can_fork"] is True  # a fresh interpreter runs one thread
    assert report["workers"] == 2
    assert [square for square, _ in report["results"]] == [n * n for n in range(50)]
    pids = {pid for _, pid in report["results"]}
    assert len(pids) == 2
    assert report["parent"] not in pids
    # Two tasks a worker (4 batches of 5) sent before the first result is taken; not all 50.
    assert report["pulled_before_first"] == 20


def test_an_error_in_a_worker_is_raised_in_the_caller():
    done = in_fresh_process(MAP_50, env={"FAIL_ON_SEVEN": "1"})
    assert done.returncode == 1
    assert "OSError: disk full parsing item 7" in done.stderr


def test_workers_die_with_the_process_that_forked_them(tmp_path):
    script = f"""
from ml_assets.pools import map_processes
from ml_assets_tests.test_pools import sleep_in_worker
list(map_processes(sleep_in_worker, [{str(tmp_path)!r}] * 4, 2, 1))
"""
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    deadline = time.monotonic() + 30
    while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [int(p.name) for p in tmp_path.iterdir()]
    assert len(workers) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in workers if running(pid)]
    for pid in survivors:  # not left behind for two minutes when this fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, "a worker outlived its parent"


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped (PID 1 of a container may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
