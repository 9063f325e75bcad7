"""Automation conditions evaluated in process against a real instance: blocking checks stop them."""

import hashlib
import shutil

import dagster as dg
import pytest

from ml_assets.automation.landing_sensor import weather_sensor
from ml_assets.definitions import defs
from ml_assets.partitions import landing_days
from ml_assets_tests.conftest import make_resources

GOOD, BAD = "2013-01-05", "2013-01-06"


@pytest.fixture
def world(tmp_path, landed_month):
    landing = tmp_path / "landing"
    shutil.copytree(landed_month, landing)
    (landing / f"flights_{BAD}.csv").write_bytes(b"")  # refused: the day has no valid rows
    definitions = defs()
    resources = make_resources(tmp_path, landing)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landing_days.name, [f"2013-01-{d:02d}" for d in range(1, 11)])
        yield {"defs": definitions, "instance": instance, "resources": resources}


def run(world, selection, **kwargs):
    assets = [a for a in world["defs"].assets if isinstance(a, dg.AssetsDefinition)]
    return dg.materialize(
        assets,
        selection=selection,
        instance=world["instance"],
        resources=world["resources"],
        raise_on_error=False,
        **kwargs,
    )


def evaluate(world, cursor=None):
    return dg.evaluate_automation_conditions(defs=world["defs"], instance=world["instance"], cursor=cursor)


def test_new_raw_day_is_followed_but_not_past_a_failed_blocking_check(world):
    first = evaluate(world)
    run(world, ["raw_data"], partition_key=GOOD)
    run(world, ["raw_data", "validated_data", "quarantine"], partition_key=BAD)
    result = evaluate(world, first.cursor)
    assert result.get_requested_partitions(dg.AssetKey("validated_data")) == {GOOD}
    # validated_data[BAD] failed has_rows (blocking): features never picks it up.
    assert BAD not in result.get_requested_partitions(dg.AssetKey("features"))


def test_sensor_runs_are_not_followed_twice(world):
    start = evaluate(world)
    run(world, ["raw_data"], partition_key="2013-01-01")  # by hand: followed
    first = evaluate(world, start.cursor)
    assert first.get_requested_partitions(dg.AssetKey("validated_data")) == {"2013-01-01"}
    run(world, ["raw_data"], partition_key=GOOD, tags={"ml_assets/landing_file": f"flights_{GOOD}.csv"})
    result = evaluate(world, first.cursor)
    # The landing sensor's run carries the day downstream itself: automation must not repeat it.
    assert GOOD not in result.get_requested_partitions(dg.AssetKey("validated_data"))


def test_champion_decision_follows_only_a_challenger_that_passed_its_gate_and_both_are_explained(world):
    days = {
        "dagster/asset_partition_range_start": "2013-01-01",
        "dagster/asset_partition_range_end": "2013-01-10",
    }
    ingest = run(world, ["raw_data", "validated_data", "quarantine", "features"], tags=days)
    assert not ingest.success  # 2013-01-06 is refused inside the range; the other days are written
    run(world, ["features"], tags={**days, "dagster/asset_partition_range_end": "2013-01-05"})
    cursor = evaluate(world).cursor

    strict = {
        "ops": {"trained_model": {"config": {"holdout_days": 2, "max_iter": 30, "min_holdout_roc_auc": 0.99}}}
    }
    failed = run(world, ["trained_model"], run_config=strict)
    assert not failed.success
    after_failed = evaluate(world, cursor)
    assert after_failed.get_num_requested(dg.AssetKey("production_model")) == 0
    assert after_failed.get_num_requested(dg.AssetKey("feature_importance")) == 1  # the one to read

    loose = {
        "ops": {"trained_model": {"config": {"holdout_days": 2, "max_iter": 30, "min_holdout_roc_auc": 0.5}}}
    }
    # The daemon ticks between a request and the next training run ends (a request counts as handled
    # on the tick after it).
    settled = evaluate(world, after_failed.cursor)
    assert settled.get_num_requested(dg.AssetKey("feature_importance")) == 0
    assert run(world, ["trained_model"], run_config=loose).success
    after_passed = evaluate(world, settled.cursor)
    assert after_passed.get_num_requested(dg.AssetKey("production_model")) == 1
    assert after_passed.get_num_requested(dg.AssetKey("feature_importance")) == 1
    # Asked once: the next evaluation does not ask again for the same challenger.
    again = evaluate(world, after_passed.cursor)
    assert again.get_num_requested(dg.AssetKey("production_model")) == 0
    assert again.get_num_requested(dg.AssetKey("feature_importance")) == 0


def weather_tick(world, cursor=None):
    """The weather sensor's tick, its events stored as the daemon stores them."""
    context = dg.build_sensor_context(
        instance=world["instance"], cursor=cursor, resources={"landing": world["resources"]["landing"]}
    )
    result = weather_sensor(context)
    for event in getattr(result, "asset_events", []):
        world["instance"].report_runless_asset_event(event)
    return result


def test_weather_landing_after_its_day_re_runs_only_that_days_features(world, tmp_path):
    weather = tmp_path / "landing" / f"weather_{GOOD}.csv"
    held_back = weather.read_bytes()
    weather.unlink()
    first_tick = weather_tick(world)
    start = evaluate(world)
    tags = {"ml_assets/landing_file": f"flights_{GOOD}.csv"}  # as the landing sensor's run
    ingest = run(
        world, ["raw_data", "validated_data", "quarantine", "features"], partition_key=GOOD, tags=tags
    )
    (without,) = [e for e in ingest.get_asset_check_evaluations() if e.check_name == "weather_joined"]
    assert (without.passed, without.metadata["days_without_weather_file"].value) == (False, 1)
    settled = evaluate(world, start.cursor)
    assert settled.get_requested_partitions(dg.AssetKey("features")) == set()

    weather.write_bytes(held_back)  # the weather lands late
    late = weather_tick(world, first_tick.cursor)
    assert [(e.asset_key, e.partition) for e in late.asset_events] == [(dg.AssetKey("weather"), GOOD)]
    followed = evaluate(world, settled.cursor)
    assert followed.get_requested_partitions(dg.AssetKey("features")) == {GOOD}
    assert followed.get_num_requested(dg.AssetKey("validated_data")) == 0

    rerun = run(world, ["features"], partition_key=GOOD)
    (joined,) = [e for e in rerun.get_asset_check_evaluations() if e.check_name == "weather_joined"]
    assert joined.passed
    assert joined.metadata["share_with_weather"].value > 0.9
    after_rerun = evaluate(world, followed.cursor)
    assert after_rerun.get_num_requested(dg.AssetKey("features")) == 0

    weather.write_bytes(held_back)  # landed again, the same bytes: no event, no re-run
    same = weather_tick(world, late.cursor)
    assert list(same.asset_events) == []
    assert evaluate(world, after_rerun.cursor).get_num_requested(dg.AssetKey("features")) == 0
    weather.write_bytes(held_back.replace(b"\n", b"\r\n"))  # new bytes (the same readings): recorded
    changed = weather_tick(world, same.cursor)
    (event,) = changed.asset_events
    assert event.metadata["sha256"].value == hashlib.sha256(weather.read_bytes()).hexdigest()


def test_weather_landed_again_as_its_features_read_it_re_runs_nothing(world, tmp_path):
    weather = tmp_path / "landing" / f"weather_{GOOD}.csv"
    read = weather.read_bytes()
    first_tick = weather_tick(world)
    ingest = run(world, ["raw_data", "validated_data", "quarantine", "features"], partition_key=GOOD)
    (features,) = [e for e in ingest.get_asset_materialization_events() if e.asset_key.path == ["features"]]
    sha = hashlib.sha256(read).hexdigest()
    assert features.materialization.metadata["weather_sha256"].value == sha
    start = evaluate(world)

    weather.write_bytes(read)  # copied in again after the features ran: the same readings
    same = weather_tick(world, first_tick.cursor)
    assert list(same.asset_events) == []
    assert evaluate(world, start.cursor).get_num_requested(dg.AssetKey("features")) == 0
    weather.write_bytes(read.replace(b"\n", b"\r\n"))  # corrected bytes: recorded, features follow
    changed = weather_tick(world, same.cursor)
    (event,) = changed.asset_events
    assert (event.partition, event.metadata["sha256"].value) == (
        GOOD,
        hashlib.sha256(weather.read_bytes()).hexdigest(),
    )
