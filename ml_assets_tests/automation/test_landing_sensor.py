import os
import time

import dagster as dg
import pytest

from ml_assets.automation.landing_sensor import landing_sensor, weather_sensor
from ml_assets.partitions import landing_days
from ml_assets.resources.landing import LandingCursor, LocalLandingZone


def touch(path, content: bytes = b"x\n", mtime_ns: int | None = None):
    path.write_bytes(content)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def tick(instance, landing_dir, cursor=None, sensor=landing_sensor):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"landing": LocalLandingZone(landing_dir=str(landing_dir))},
    )
    return sensor(context), context


def test_backlog_registers_every_day_with_one_run_per_file(instance, tmp_path):
    for day in (1, 2, 3):
        touch(tmp_path / f"flights_2013-01-0{day}.csv", mtime_ns=day * 10**9)
    touch(tmp_path / "flights_2013-01-04.csv.tmp")  # still being written
    touch(tmp_path / "weather_2013-01-01.csv")  # a day's weather is read by features, not a run
    result, _ = tick(instance, tmp_path)
    assert [r.partition_keys for r in result.dynamic_partitions_requests] == [
        ["2013-01-01", "2013-01-02", "2013-01-03"]
    ]
    assert [r.partition_key for r in result.run_requests] == ["2013-01-01", "2013-01-02", "2013-01-03"]
    assert result.run_requests[0].run_key == f"flights_2013-01-01.csv:{10**9}"
    assert LandingCursor.parse(result.cursor) == LandingCursor(3 * 10**9, "flights_2013-01-03.csv")


def test_next_tick_sees_only_the_new_file(instance, tmp_path):
    touch(tmp_path / "flights_2013-01-01.csv", mtime_ns=10**9)
    first, _ = tick(instance, tmp_path)
    instance.add_dynamic_partitions(landing_days.name, ["2013-01-01"])
    nothing, _ = tick(instance, tmp_path, first.cursor)
    assert isinstance(nothing, dg.SkipReason)
    # The writer renames the finished *.tmp: now it is complete and new.
    touch(tmp_path / "flights_2013-01-02.csv", mtime_ns=2 * 10**9)
    second, _ = tick(instance, tmp_path, first.cursor)
    (run,) = second.run_requests
    assert run.partition_key == "2013-01-02"


def test_misnamed_file_is_recorded_not_read(instance, tmp_path):
    touch(tmp_path / "flights_jan-first.csv", mtime_ns=10**9)
    result, _ = tick(instance, tmp_path)
    assert result.run_requests == []
    assert result.dynamic_partitions_requests == []
    (event,) = result.asset_events
    assert event.asset_key == dg.AssetKey("raw_data")
    assert event.metadata["rule"].value == "bad_file_name"
    assert event.metadata["rejected_file"].value.endswith("flights_jan-first.csv")
    assert LandingCursor.parse(result.cursor).name == "flights_jan-first.csv"


def test_days_registered_before_the_first_tick_are_not_rerun(instance, tmp_path):
    touch(tmp_path / "flights_2013-01-01.csv", mtime_ns=10**9)
    instance.add_dynamic_partitions(landing_days.name, ["2013-01-01"])  # as `make dev` does
    first, _ = tick(instance, tmp_path)
    assert first.run_requests == []
    # The day's file is landed again with new content: a re-land runs the day again.
    touch(tmp_path / "flights_2013-01-01.csv", b"y\n", mtime_ns=5 * 10**9)
    again, _ = tick(instance, tmp_path, first.cursor)
    assert [r.partition_key for r in again.run_requests] == ["2013-01-01"]
    assert again.dynamic_partitions_requests == []


def test_ten_thousand_seen_files_and_one_new(instance, tmp_path):
    for i in range(10_000):
        touch(tmp_path / f"flights_{2000 + i // 365:04d}-01-{i % 28 + 1:02d}_{i}.csv", mtime_ns=10**9)
    cursor = LandingCursor(10**9, "flights_~").dump()  # everything above is already seen
    touch(tmp_path / "flights_2013-02-01.csv", mtime_ns=2 * 10**9)
    result, _ = tick(instance, tmp_path, cursor)
    (run,) = result.run_requests
    assert run.partition_key == "2013-02-01"


def test_identical_reland_is_recorded_and_skipped_changed_one_runs(instance, tmp_path, day_csv):
    from ml_assets.assets.ingestion import raw_data
    from ml_assets.resources.io_manager import ParquetIOManager

    landing = tmp_path / "landing"
    landing.mkdir()
    path = landing / "flights_2013-01-15.csv"
    touch(path, day_csv("2013-01-15"), mtime_ns=10**9)
    first, _ = tick(instance, landing)
    instance.add_dynamic_partitions(landing_days.name, ["2013-01-15"])
    dg.materialize(
        [raw_data],
        partition_key="2013-01-15",
        instance=instance,
        resources={
            "landing": LocalLandingZone(landing_dir=str(landing)),
            "io_manager": ParquetIOManager(base_dir=str(tmp_path / "warehouse")),
        },
    )
    touch(path, day_csv("2013-01-15"), mtime_ns=2 * 10**9)  # the same bytes, landed again
    same, _ = tick(instance, landing, first.cursor)
    assert same.run_requests == []
    (event,) = same.asset_events
    assert event.partition == "2013-01-15"
    assert "same bytes" in event.metadata["reason"].value
    touch(path, day_csv("2013-01-16"), mtime_ns=3 * 10**9)  # new content under the same name
    changed, _ = tick(instance, landing, same.cursor)
    assert [r.partition_key for r in changed.run_requests] == ["2013-01-15"]


def test_weather_landing_after_its_days_features_is_recorded_once(instance, tmp_path):
    touch(tmp_path / "weather_2013-01-01.csv", mtime_ns=10**9)
    instance.add_dynamic_partitions(landing_days.name, ["2013-01-01", "2013-01-02", "2013-01-03"])
    first, _ = tick(instance, tmp_path, sensor=weather_sensor)
    assert first.asset_events == []  # the first tick only sets the cursor
    for day in ("2013-01-02", "2013-01-03"):
        instance.report_runless_asset_event(dg.AssetMaterialization("features", partition=day))
    after_features = time.time_ns() + 10**9
    touch(tmp_path / "weather_2013-01-02.csv", mtime_ns=after_features)  # late: features ran without it
    touch(tmp_path / "weather_2013-01-03.csv", mtime_ns=2 * 10**9)  # there when features ran
    touch(tmp_path / "weather_2013-01-04.csv", mtime_ns=after_features)  # its flights run will read it
    touch(tmp_path / "weather_jan.csv", mtime_ns=after_features)
    second, _ = tick(instance, tmp_path, first.cursor, sensor=weather_sensor)
    misnamed, late = second.asset_events
    assert (misnamed.asset_key, misnamed.metadata["rule"].value) == (dg.AssetKey("weather"), "bad_file_name")
    assert misnamed.metadata["rejected_file"].value == str(tmp_path / "weather_jan.csv")
    assert isinstance(late, dg.AssetMaterialization)
    assert (late.asset_key, late.partition) == (dg.AssetKey("weather"), "2013-01-02")
    assert late.metadata["file"].value == str(tmp_path / "weather_2013-01-02.csv")
    assert second.run_requests == []
    assert isinstance(tick(instance, tmp_path, second.cursor, sensor=weather_sensor)[0], dg.SkipReason)
