import io
import json
import os
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_assets.domain.tables import TEXT
from ml_assets.resources import io_manager
from ml_assets.resources.files import write_bytes_atomic, write_files_atomic
from ml_assets.resources.io_manager import (
    ALLOW_MISSING_PARTITIONS,
    COLUMNS,
    ParquetIOManager,
    concat_parquet,
    reads_back_as_written,
    split_by_partition,
)
from ml_assets_tests.conftest import CountsReads, materialize_range


def frame(days: list[str], rows_per_day: int = 2) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "landing_day": pd.array([d for d in days for _ in range(rows_per_day)], dtype=TEXT),
            "value": range(len(days) * rows_per_day),
        }
    )


def test_split_by_partition_gives_every_key_a_typed_table():
    parts = {
        k: pd.read_parquet(io.BytesIO(v))
        for k, v in split_by_partition(frame(["a", "b"]), ["a", "b", "c"]).items()
    }
    assert [len(parts[k]) for k in ("a", "b", "c")] == [2, 2, 0]
    assert parts["b"]["value"].tolist() == [2, 3]
    assert list(parts["c"].columns) == ["landing_day", "value"]
    assert str(parts["c"]["value"].dtype) == "int64"
    with pytest.raises(ValueError, match="outside this run"):
        split_by_partition(frame(["a", "z"]), ["a"])
    with pytest.raises(ValueError, match="landing_day"):
        split_by_partition(pd.DataFrame({"value": [1]}), ["a"])


def test_a_days_file_has_dictionaries_for_text_only_and_no_statistics():
    """What a day's file pays per column (see split_by_partition): its readers lose nothing."""
    import pyarrow.parquet as pq

    table = frame(["a"], rows_per_day=50).assign(carrier=["UA", "AA"] * 25, delay=[1.5, 2.5] * 25)
    data = split_by_partition(table, ["a"])["a"]
    group = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    dictionary = {name for name, column in columns.items() if column.has_dictionary_page}
    assert dictionary == {"landing_day", "carrier"}
    assert not any(column.is_stats_set for column in columns.values())
    pd.testing.assert_frame_equal(concat_parquet([data]), table.astype({"carrier": TEXT}))


def test_split_in_chunks_equals_one_conversion_and_keeps_types():
    """Chunks of whole days give the same files as converting the frame at once, even where a
    column is empty in a whole chunk (its type comes from the whole frame)."""
    days = [f"d{i:02d}" for i in range(12)]
    table = frame(days, rows_per_day=3).assign(
        delay=pd.array([None] * 9 + list(range(27)), dtype="Int64"),
        carrier=[None] * 9 + ["UA"] * 27,
    )
    table = table.iloc[::-1].reset_index(drop=True)  # days need not be in key order or contiguous
    whole = split_by_partition(table, [*days, "empty"], chunk_rows=10**9)
    chunked = split_by_partition(table, [*days, "empty"], chunk_rows=4)
    assert list(chunked) == [*days, "empty"]
    for key in whole:
        expected = pd.read_parquet(io.BytesIO(whole[key]))
        pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(chunked[key])), expected)
    first = pd.read_parquet(io.BytesIO(chunked["d00"]))
    assert first["carrier"].isna().all()
    assert str(first["delay"].dtype) == "Int64"
    assert first["value"].tolist() == [2, 1, 0]


@pytest.fixture
def taken(monkeypatch) -> list[int]:
    """One entry per DataFrame.take call (a row-by-row copy) while the test runs."""
    calls: list[int] = []
    original_take = pd.DataFrame.take
    monkeypatch.setattr(
        pd.DataFrame, "take", lambda self, *a, **k: calls.append(1) or original_take(self, *a, **k)
    )
    return calls


def test_a_table_in_day_order_is_sliced_not_copied_and_gives_the_same_files(taken):
    """Sliced (rows already grouped by day, in order) or taken (days interleaved): the same bytes."""
    days = [f"d{i:02d}" for i in range(9)]
    ordered = frame(days, rows_per_day=5).sort_values("landing_day", kind="stable", ignore_index=True)
    interleaved = ordered.iloc[np.argsort(np.arange(len(ordered)) % 5, kind="stable")]
    taken.clear()  # building the tables above may take; only the split is under test
    split_by_partition(ordered, days, chunk_rows=12)
    assert taken == []
    assert split_by_partition(ordered, days, chunk_rows=12) == split_by_partition(
        interleaved.reset_index(drop=True), days, chunk_rows=12
    )


def test_days_without_rows_get_typed_empty_files():
    table = frame(["a", "b"]).assign(delay=pd.array([1, None, 3, 4], dtype="Int64"))
    parts = split_by_partition(table, ["none1", "a", "none2", "b"])
    assert list(parts) == ["none1", "a", "none2", "b"]
    full = pd.read_parquet(io.BytesIO(parts["a"]))
    for key in ("none1", "none2"):
        empty = pd.read_parquet(io.BytesIO(parts[key]))
        assert len(empty) == 0
        assert empty.dtypes.to_dict() == full.dtypes.to_dict()


def test_concat_parquet_equals_reading_each_file_with_pandas():
    """One Arrow concatenation gives what per-file pd.read_parquet + pd.concat gave: rows in file
    order, pandas dtypes (nullable ints, datetimes), empty files skipped; text columns (written as
    `string` or as `object`) Arrow-backed."""
    days = ["a", "b", "c"]
    table = frame(days).assign(
        delay=pd.array([1, None, 3, 4, 5, None], dtype="Int64"),
        when=pd.to_datetime(["2013-01-01 05:00"] * 6),
        carrier=["UA", "AA", None, "B6", "DL", "UA"],
    )
    parts = split_by_partition(table, [*days, "empty"])
    files = [parts[k] for k in ("c", "empty", "a", "b")]
    expected = pd.concat(
        [pd.read_parquet(io.BytesIO(f)) for f in files if len(pd.read_parquet(io.BytesIO(f)))],
        ignore_index=True,
    ).astype({"landing_day": TEXT, "carrier": TEXT})
    loaded = concat_parquet(files)
    pd.testing.assert_frame_equal(loaded, expected)
    assert [loaded[c].dtype.storage for c in ("landing_day", "carrier")] == ["pyarrow", "pyarrow"]
    assert loaded["landing_day"].tolist() == ["c", "c", "a", "a", "b", "b"]
    assert str(loaded["delay"].dtype) == "Int64"
    only_empty = concat_parquet([parts["empty"]])
    assert len(only_empty) == 0
    assert list(only_empty.columns) == list(table.columns)
    assert concat_parquet([]).empty


def test_threads_give_the_same_files_and_tables():
    """Days encoded and files decoded on a pool of threads: byte for byte what one thread writes."""
    days = [f"d{i:02d}" for i in range(40)]
    table = frame(days, rows_per_day=7).assign(carrier=["UA", None, "AA", "B6", "DL", "UA", "EV"] * 40)
    one = split_by_partition(table, [*days, "empty"], chunk_rows=50)
    four = split_by_partition(table, [*days, "empty"], chunk_rows=50, threads=4)
    assert list(four) == list(one)
    assert four == one
    files = [one[k] for k in reversed(list(one))]
    pd.testing.assert_frame_equal(concat_parquet(files, threads=4), concat_parquet(files))


@pytest.mark.parametrize("threads", [1, 4])
def test_partition_range_round_trip_and_exact_replacement(tmp_path, threads):
    manager = ParquetIOManager(base_dir=str(tmp_path), threads=threads)
    key = dg.AssetKey("table")
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    manager.handle_output(_range_output_context(key, days), frame(days))
    assert sorted(p.name for p in (tmp_path / "table").iterdir()) == [f"{d}.parquet" for d in days]
    # Re-materializing one day replaces that file only, with no duplicates.
    manager.handle_output(_range_output_context(key, days[1:2]), frame(days[1:2], rows_per_day=5))
    loaded = manager.load_input(_range_input_context(key, days))
    assert loaded.groupby("landing_day").size().to_dict() == {days[0]: 2, days[1]: 5, days[2]: 2}


def test_records_are_json(tmp_path):
    manager = ParquetIOManager(base_dir=str(tmp_path))
    key = dg.AssetKey("model")
    manager.handle_output(dg.build_output_context(asset_key=key), {"version": "3"})
    assert json.loads((tmp_path / "model.json").read_text()) == {"version": "3"}
    assert manager.load_input(dg.build_input_context(asset_key=key)) == {"version": "3"}


def test_atomic_write_keeps_old_version_when_the_writer_dies(tmp_path, monkeypatch):
    target = tmp_path / "t.parquet"
    write_bytes_atomic(target, b"old")

    def die(*_args):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]  # no temp file left behind


def _batch(tmp_path, content: bytes) -> list[tuple]:
    return [(tmp_path / "a" / f"{day}.parquet", content + day.encode()) for day in ("d1", "d2", "d3")]


def _files_under(directory) -> dict[str, bytes]:
    """The files under `directory` by relative path, but the temp sweep's marker."""
    from ml_assets.resources.files import SWEPT_MARKER

    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != SWEPT_MARKER
    }


def test_a_batch_of_files_is_on_disk_before_it_replaces_any(tmp_path, monkeypatch):
    from ml_assets.resources import files

    write_files_atomic(_batch(tmp_path, b"old-"), threads=2)
    synced = []
    real_sync = files.sync_filesystems

    def sync(directories):
        synced.append(_files_under(tmp_path))  # what a reader sees at each sync
        real_sync(directories)

    monkeypatch.setattr(files, "sync_filesystems", sync)
    write_files_atomic([*_batch(tmp_path, b"new-"), (tmp_path / "b" / "d4.parquet", b"new-d4")], threads=2)
    final = {"a/d1.parquet": b"new-d1", "a/d2.parquet": b"new-d2", "a/d3.parquet": b"new-d3"}
    assert _files_under(tmp_path) == {**final, "b/d4.parquet": b"new-d4"}  # no temp file left
    if files._syncfs() is None:  # not Linux: an fsync per file, as write_bytes_atomic
        assert synced == []
        return
    # Synced once with the new versions in temp files beside the old ones, once after the renames.
    assert len(synced) == 2
    before = {name: data for name, data in synced[0].items() if name.endswith(".parquet")}
    assert before == {"a/d1.parquet": b"old-d1", "a/d2.parquet": b"old-d2", "a/d3.parquet": b"old-d3"}
    assert sorted(data for name, data in synced[0].items() if name.endswith(".tmp")) == [
        b"new-d1",
        b"new-d2",
        b"new-d3",
        b"new-d4",
    ]
    assert synced[1] == _files_under(tmp_path)


def test_a_failed_batch_leaves_the_old_files_and_no_temp(tmp_path, monkeypatch):
    from ml_assets.resources import files

    write_files_atomic(_batch(tmp_path, b"old-"), threads=2)
    old = _files_under(tmp_path)
    (tmp_path / "not-a-dir").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not-a-dir"):  # a folder that cannot be made: none replaced
        write_files_atomic([*_batch(tmp_path, b"new-"), (tmp_path / "not-a-dir" / "d4.parquet", b"new")], 2)
    assert _files_under(tmp_path) == {**old, "not-a-dir": b"x"}

    renamed = []
    real_replace = os.replace

    def replace_once(source, destination):
        if renamed:
            raise KeyboardInterrupt("killed between two renames")
        renamed.append(destination)
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace_once)
    with pytest.raises(KeyboardInterrupt):
        write_files_atomic(_batch(tmp_path, b"new-"), threads=2)
    after = _files_under(tmp_path)
    assert not any(name.endswith(".tmp") for name in after)  # the temps not renamed are removed
    # Each file whole, old or new; only the one renamed is new.
    assert {name: data[:4] for name, data in after.items() if name.startswith("a/")} == {
        name: b"new-" if tmp_path / name == renamed[0] else b"old-" for name in old
    }
    monkeypatch.setattr(files, "_syncfs", lambda: None)  # elsewhere than Linux: an fsync per file
    monkeypatch.setattr(os, "replace", real_replace)
    write_files_atomic(_batch(tmp_path, b"new-"), threads=2)
    assert {name: data for name, data in _files_under(tmp_path).items() if name.startswith("a/")} == {
        name: b"new-" + name[2:4].encode() for name in old
    }


def test_a_write_removes_the_temp_files_a_killed_writer_left_an_hour_ago(tmp_path):
    from ml_assets.resources import files

    write_files_atomic(_batch(tmp_path, b"old-"), threads=2)  # a new folder: nothing to sweep
    assert write_files_atomic(_batch(tmp_path, b"mid-"), threads=2) == []  # swept, nothing to remove
    folder = tmp_path / "a"
    stale = [files._temp_beside(folder / name) for name in ("d1.parquet", "d9.parquet")]
    fresh = files._temp_beside(folder / "d2.parquet")  # a write in flight: recent
    for fd, _ in [*stale, fresh]:
        os.close(fd)
    (folder / ".keep").write_bytes(b"")  # hidden, but not one of our temp files
    (folder / ".d1.parquet.tmp").write_bytes(b"")  # not mkstemp's name
    an_hour_ago = time.time() - files.ABANDONED_TEMP_SECONDS - 1
    for name in [tmp for _, tmp in stale] + [str(folder / ".keep"), str(folder / ".d1.parquet.tmp")]:
        os.utime(name, (an_hour_ago, an_hour_ago))

    # Swept by the last write: a write within the hour does not list the folder again.
    assert write_files_atomic(_batch(tmp_path, b"late-"), threads=2) == []
    assert all(Path(tmp).exists() for _, tmp in stale)
    os.utime(folder / files.SWEPT_MARKER, (an_hour_ago, an_hour_ago))
    swept = write_files_atomic(_batch(tmp_path, b"new-"), threads=2)
    assert sorted(swept) == sorted(Path(tmp) for _, tmp in stale)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [".d1.parquet.tmp", ".keep", ".swept", Path(fresh[1]).name, "d1.parquet", "d2.parquet", "d3.parquet"]
    )
    assert (folder / "d1.parquet").read_bytes() == b"new-d1"
    assert files.sweep_abandoned_temps(tmp_path / "never-written") == []
    assert not (tmp_path / "never-written").exists()


def test_the_io_manager_logs_the_temp_files_it_removed(tmp_path, capsys):
    from ml_assets.resources import files

    manager = ParquetIOManager(base_dir=str(tmp_path))
    key = dg.AssetKey("t")
    days = ["2013-01-01", "2013-01-02"]
    fd, stale = files._temp_beside(tmp_path / "t" / "2013-01-01.parquet")
    os.close(fd)
    an_hour_ago = time.time() - files.ABANDONED_TEMP_SECONDS - 1
    os.utime(stale, (an_hour_ago, an_hour_ago))
    frame = pd.DataFrame({"landing_day": days, "x": [1.0, 2.0]})
    manager.handle_output(_range_output_context(key, days), frame)
    assert not Path(stale).exists()
    logged = capsys.readouterr().err  # the output context's logger writes to stderr
    assert f"removed 1 temp file(s) a killed run left beside t's files: {Path(stale).name}" in logged


PARTITIONS = dg.StaticPartitionsDefinition(["2013-01-01", "2013-01-02", "2013-01-03"])


def _range_output_context(key, days, step_key=None):
    return dg.build_output_context(
        step_key=step_key,
        asset_key=key,
        partition_key=None,
        asset_partitions_def=PARTITIONS,
        asset_partition_key_range=dg.PartitionKeyRange(days[0], days[-1]),
    )


def _range_input_context(key, days, metadata=None):
    return dg.build_input_context(
        asset_key=key,
        asset_partitions_def=PARTITIONS,
        asset_partition_key_range=dg.PartitionKeyRange(days[0], days[-1]),
        definition_metadata=metadata,
    )


def test_missing_partitions_fail_unless_the_input_allows_them(tmp_path):
    manager = ParquetIOManager(base_dir=str(tmp_path))
    key = dg.AssetKey("table")
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    manager.handle_output(_range_output_context(key, days[:1]), frame(days[:1]))
    manager.handle_output(_range_output_context(key, days[2:]), frame(days[2:]))
    with pytest.raises(FileNotFoundError):
        manager.load_input(_range_input_context(key, days))
    allowed = _range_input_context(key, days, {ALLOW_MISSING_PARTITIONS: True})
    assert sorted(manager.load_input(allowed)["landing_day"].unique()) == [days[0], days[2]]


TRIM = """
import gc, numpy as np
from ml_assets.resources.io_manager import give_back_freed_memory
def resident_mb(): return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
give_back_freed_memory()  # its own imports (pyarrow) resident before the measure
blocks = [np.ones(2_000) for _ in range(20_000)]  # 16 KB each: glibc's heap, not an mmap of their own
survivors = blocks[::64]  # a previous step's leftovers, scattered through the heap
del blocks
gc.collect()
before = resident_mb()
give_back_freed_memory()
print(before - resident_mb())
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads resident memory from /proc")
def test_freed_heap_pages_are_given_back_to_the_system():
    """320 MB freed among small survivors stays resident until trimmed; the trim gives it back."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", TRIM], capture_output=True, text=True, check=True)
    assert float(done.stdout) > 250


def test_a_range_is_read_and_written_after_freed_memory_is_given_back(tmp_path, monkeypatch):
    """Before a range's output is encoded and before a range is read, what the step (or the
    previous one) freed goes back to the system; a single partition pays for neither."""
    calls = []
    monkeypatch.setattr(io_manager, "give_back_freed_memory", lambda: calls.append("give back"))
    split = io_manager.split_by_partition
    monkeypatch.setattr(
        io_manager, "split_by_partition", lambda *a, **k: calls.append("split") or split(*a, **k)
    )
    manager = ParquetIOManager(base_dir=str(tmp_path))
    key = dg.AssetKey("table")
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    manager.handle_output(_range_output_context(key, days), frame(days))
    assert calls == ["give back", "split"]
    manager.load_input(_range_input_context(key, days))
    assert calls == ["give back", "split", "give back"]
    calls.clear()
    one_day = dg.build_output_context(asset_key=key, partition_key=days[0], asset_partitions_def=PARTITIONS)
    manager.handle_output(one_day, frame(days[:1]))
    assert calls == ["split"]


def test_an_input_that_names_its_columns_loads_only_those(tmp_path):
    """`columns` input metadata: read from storage, only those columns are decoded; handed over in
    a run, the table's columns are selected without a copy, and the rest is freed with the table."""
    import gc
    import weakref

    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    manager = ParquetIOManager(base_dir=str(tmp_path))
    key = dg.AssetKey("table")
    wide = frame(days).assign(extra=np.arange(6, dtype="int8"), note=pd.array(list("abcdef"), dtype=TEXT))
    wide_copy = wide.copy()
    manager.handle_output(_range_output_context(key, days), wide)
    narrow = _range_input_context(key, days, {COLUMNS: ["value", "landing_day"]})
    read = manager.load_input(narrow)
    pd.testing.assert_frame_equal(read, wide[["value", "landing_day"]])
    # Handed over: the same memory, and the columns not asked for go with the table.
    manager.setup_for_execution(dg.build_init_resource_context())
    manager.handle_output(_range_output_context(key, days, step_key="write"), wide)
    extra = weakref.ref(wide["extra"].to_numpy().base)
    handed = manager.load_input(narrow)
    assert list(handed.columns) == ["value", "landing_day"]
    assert np.shares_memory(handed["value"].to_numpy(), wide["value"].to_numpy())
    del wide
    gc.collect()
    assert extra() is None
    pd.testing.assert_frame_equal(handed, read)
    missing = _range_input_context(key, days, {COLUMNS: ["value", "delay"]})
    manager.handle_output(_range_output_context(key, days, step_key="write again"), frame(days))
    with pytest.raises(KeyError, match="table: no column delay"):
        manager.load_input(missing)  # handed over
    with pytest.raises(KeyError, match="table: no column delay"):
        manager.load_input(missing)  # read from storage
    # An unpartitioned table the same.
    manager.handle_output(dg.build_output_context(asset_key=dg.AssetKey("whole")), wide_copy)
    whole = dg.build_input_context(
        asset_key=dg.AssetKey("whole"), definition_metadata={COLUMNS: ["note", "value"]}
    )
    pd.testing.assert_frame_equal(manager.load_input(whole), wide_copy[["note", "value"]])


def test_a_range_read_first_frees_tables_only_a_reference_cycle_holds(tmp_path):
    """What a caught exception's traceback keeps (Dagster's asset-key insert, see
    release_unreachable_tables) is freed before the next year-long input is read, not whenever
    Python's cycle collector happens to run."""
    import gc
    import weakref

    manager = ParquetIOManager(base_dir=str(tmp_path))
    key = dg.AssetKey("table")
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    manager.handle_output(_range_output_context(key, days), frame(days))

    def held_by_a_traceback():
        previous_output = frame(days, rows_per_day=1_000)
        try:
            raise RuntimeError("unique constraint failed")
        except RuntimeError as error:
            caught = error  # noqa: F841 (the frame holds the exception, its traceback the frame)
        return weakref.ref(previous_output)

    gc.disable()  # so only the read under test may collect
    try:
        gone = held_by_a_traceback()
        assert gone() is not None
        loaded = manager.load_input(_range_input_context(key, days))
        assert gone() is None
    finally:
        gc.enable()
    assert len(loaded) == 6


def read_back(table: pd.DataFrame, days: list[str]) -> pd.DataFrame:
    parts = split_by_partition(table, days)
    return concat_parquet([parts[day] for day in days])


def test_only_a_table_that_reads_back_equal_may_be_handed_over():
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    table = frame(days).assign(
        delay=pd.array([1, None, 3, 4, 5, None], dtype="Int64"),
        carrier=pd.array(["UA", None, "AA", "B6", "DL", "UA"], dtype=TEXT),
        when=pd.to_datetime(["2013-01-01 05:00"] * 6),
    )
    assert reads_back_as_written(table, days)
    pd.testing.assert_frame_equal(read_back(table, days), table, check_exact=True)
    assert reads_back_as_written(table.iloc[:0], days)
    # Each way the read differs from the object, and the read shows it.
    unordered = table.iloc[[2, 3, 0, 1, 4, 5]].reset_index(drop=True)
    numbers_as_objects = table.assign(value=table["value"].astype(object))
    indexed = table.set_index(table.index + 10)
    python_strings = table.astype({"carrier": "string[python]"})  # text is read back Arrow-backed
    for different in (unordered, numbers_as_objects, indexed, python_strings):
        assert not reads_back_as_written(different, days)
        with pytest.raises(AssertionError):
            pd.testing.assert_frame_equal(read_back(different, days), different)
    assert not reads_back_as_written(table, list(reversed(days)))
    assert not reads_back_as_written(table, days[:2])  # rows of a day the keys do not name
    assert not reads_back_as_written(table.drop(columns="landing_day"), days)
    missing_day = table.assign(landing_day=table["landing_day"].where(table.index != 5))
    assert not reads_back_as_written(missing_day, days)


RETURNED: dict[str, pd.DataFrame] = {}
RECEIVED: dict[str, pd.DataFrame] = {}


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())
def first(context: dg.AssetExecutionContext) -> pd.DataFrame:
    RETURNED["first"] = frame(list(context.partition_keys), rows_per_day=3)
    return RETURNED["first"]


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())
def second(first: pd.DataFrame) -> pd.DataFrame:
    RECEIVED["second"] = first
    # Rows out of day order: written, but read back from storage by the next step.
    RETURNED["second"] = first.assign(value=first["value"] * 2).iloc[::-1].reset_index(drop=True)
    return RETURNED["second"]


@dg.asset(partitions_def=PARTITIONS, backfill_policy=dg.BackfillPolicy.single_run())
def third(second: pd.DataFrame) -> pd.DataFrame:
    RECEIVED["third"] = second
    return second


def test_in_a_run_the_next_step_gets_the_written_table_itself_and_a_later_run_reads_storage(tmp_path):
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    manager = CountsReads(base_dir=str(tmp_path))
    CountsReads.reads.clear()
    with dg.instance_for_test() as instance:
        materialize_range(
            [first, second, third],
            days,
            resources={"io_manager": manager},
            instance=instance,
        )
        assert RECEIVED["second"] is RETURNED["first"]  # no copy, no read
        assert not any(name.startswith("first/") for name in CountsReads.reads)
        # The table out of day order was read back: in day order, as a later run would read it.
        assert sorted(CountsReads.reads) == [f"second/{day}.parquet" for day in days]
        assert RECEIVED["third"] is not RETURNED["second"]
        pd.testing.assert_frame_equal(RECEIVED["third"], read_back(RETURNED["second"], days))
        assert RECEIVED["third"]["landing_day"].tolist() == [d for d in days for _ in range(3)]
        # A run of its own reads its input from storage: what the first run wrote.
        CountsReads.reads.clear()
        materialize_range(
            [first, second, third],
            days,
            selection=["second"],
            resources={"io_manager": manager},
            instance=instance,
        )
        assert sorted(CountsReads.reads) == [f"first/{day}.parquet" for day in days]
        pd.testing.assert_frame_equal(RECEIVED["second"], RETURNED["first"], check_exact=True)
        assert RECEIVED["second"] is not RETURNED["first"]
    assert manager._written_this_run is None  # nothing held by the definition's own instance


def test_a_range_is_read_in_key_order_whatever_order_dagster_gives_the_keys(tmp_path, monkeypatch):
    """Dagster hands a range run's partitions over as a set (its order follows the process's hash
    seed); the rows must not."""
    manager = ParquetIOManager(base_dir=str(tmp_path))
    key = dg.AssetKey("table")
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    manager.handle_output(_range_output_context(key, days), frame(days))
    for order in (days[::-1], [days[1], days[2], days[0]]):
        monkeypatch.setattr(dg.InputContext, "asset_partition_keys", property(lambda self, o=order: o))
        loaded = manager.load_input(_range_input_context(key, days))
        assert loaded["landing_day"].tolist() == [d for d in days for _ in range(2)]
        assert loaded["value"].tolist() == list(range(6))


def test_a_range_in_day_order_is_written_in_slices_whatever_order_dagster_gives_the_keys(
    tmp_path, monkeypatch, taken
):
    """The keys are sorted before the table is cut into chunks, so a table in day order (every
    table our assets write) is sliced, not copied row by row, also when Dagster's set of keys
    iterates in another order."""
    days = [f"2013-01-{d:02d}" for d in range(1, 4)]
    manager = ParquetIOManager(base_dir=str(tmp_path), threads=1)
    monkeypatch.setattr(dg.OutputContext, "asset_partition_keys", property(lambda self: days[::-1]))
    manager.handle_output(_range_output_context(dg.AssetKey("table"), days), frame(days, rows_per_day=4))
    assert taken == []
    assert sorted(p.name for p in (tmp_path / "table").iterdir()) == [f"{d}.parquet" for d in days]
    assert pd.read_parquet(tmp_path / "table" / f"{days[1]}.parquet")["value"].tolist() == [4, 5, 6, 7]
