"""Loading the code location takes what it loaded out of the cycle collector's scans, once, after
collecting what was already garbage; what a run creates later is collected as before.

In a fresh interpreter: the freeze is process-wide and happens once a process. A block that imports
large libraries late in a step can pause the collector; it resumes after the block."""

import gc
import json
import subprocess
import sys
import weakref

import pytest

from ml_assets import heap
from ml_assets_tests.integration.servers import REPO


def report_of_fresh_interpreter(script: str) -> dict:
    """The JSON `script` prints, run in a fresh interpreter (the freezes are once a process)."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


LOAD_TWICE = """
import gc, json, weakref

class Node:
    pass

def garbage_cycle():
    node = Node()
    node.self = node
    return weakref.ref(node)

from ml_assets.definitions import defs
gc.disable()  # no automatic collection: only the load's own may free this
before_load = garbage_cycle()
loaded = [defs()]
frozen_once = gc.get_freeze_count()
loaded.append(defs())  # kept: a second freeze would add its objects
frozen_twice = gc.get_freeze_count()
after_load = garbage_cycle()
gc.collect()
print(json.dumps({
    "before_load_freed": before_load() is None,
    "after_load_freed": after_load() is None,
    "frozen_once": frozen_once,
    "frozen_twice": frozen_twice,
    "still_scanned": len(gc.get_objects()),
}))
"""


def test_loading_freezes_what_it_loaded_once_after_collecting_garbage():
    report = report_of_fresh_interpreter(LOAD_TWICE)
    # Garbage from before the load was collected, not frozen for the life of the process.
    assert report["before_load_freed"] is True
    # Dagster's and our definitions: tens of thousands of objects no later collection scans.
    assert report["frozen_once"] > 50_000
    assert report["still_scanned"] < report["frozen_once"] / 2
    # Once a process: loading again (a second `defs()`) freezes nothing more (frozen objects that
    # reference counting frees leave the count).
    assert report["frozen_twice"] <= report["frozen_once"]
    # What is created after the load is collected as usual.
    assert report["after_load_freed"] is True


IMPORT_AFTER_DAGSTER = """
import gc, json
import dagster
tracked_after_dagster = len(gc.get_objects())
import ml_assets.definitions
print(json.dumps({
    "tracked_after_dagster": tracked_after_dagster,
    "frozen": gc.get_freeze_count(),
    "scanned": len(gc.get_objects()),
}))
"""


def test_importing_the_code_location_leaves_dagsters_objects_out_of_its_collections():
    report = report_of_fresh_interpreter(IMPORT_AFTER_DAGSTER)
    # Everything Dagster loaded was frozen before our modules imported (reference counting may free
    # a few frozen objects since) ...
    assert report["frozen"] >= 0.95 * report["tracked_after_dagster"]
    # ... so a full collection our imports trigger scans only our modules' objects, a fraction.
    assert report["scanned"] < report["frozen"] / 4


def test_a_paused_collector_collects_nothing_inside_and_resumes_after():
    class Node:
        pass

    assert gc.isenabled()
    with heap.collector_paused():
        assert not gc.isenabled()
        cycle = Node()
        cycle.self = cycle
        alive = weakref.ref(cycle)
        del cycle
        for _ in range(3):  # allocations enough for automatic collections, were the collector on
            [Node() for _ in range(10_000)]
        assert alive() is not None
    assert gc.isenabled()
    gc.collect()
    assert alive() is None  # the block's garbage goes at the first collection after it

    with pytest.raises(RuntimeError), heap.collector_paused():
        raise RuntimeError("a failed step")
    assert gc.isenabled()

    gc.disable()  # a caller's choice is kept
    try:
        with heap.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
