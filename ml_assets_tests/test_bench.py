"""The benchmark's own logic: the bare script does the graph's work (figures 1 and 3 compare the
two), the replicated years figure 7 runs on are valid data, and a report judges its figures."""

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from bench import bare, floor
from bench.run import DAILY, TARGETS, paired_runs, steal_percent, table, year_shifted
from ml_assets.definitions import defs
from ml_assets.demo import seed
from ml_assets.domain.parsing import parse_landing_file
from ml_assets.domain.tables import KEY_COLUMNS
from ml_assets.domain.validation import validate_flights
from ml_assets.partitions import landing_days
from ml_assets_tests.conftest import make_resources, materialize_range, stored_days

BAD_FILES = Path(__file__).resolve().parent / "fixtures" / "bad_files"


def test_the_bare_script_keeps_and_builds_what_the_graph_does(tmp_path, demo_flights):
    """Three days, the middle one a file with five rows off its date: the bare script must refuse
    the same rows and build the same feature table as the graph's backfill, or the ratios compare
    different work."""
    landing = tmp_path / "landing"
    days = [p.name[8:18] for p in seed(landing, "2013-01-01", 3)]
    shutil.copy(BAD_FILES / "wrong_date.csv", landing / f"flights_{days[1]}.csv")
    resources = make_resources(tmp_path, landing)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landing_days.name, days)
        result = materialize_range(
            defs().assets, days, selection=DAILY, instance=instance, resources=resources
        )
    (quarantined,) = {
        e.materialization.metadata["rows_in_run"].value
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("quarantine")
    }
    assert quarantined == 5

    raw, features = bare.ingest(landing, days)
    stored = stored_days(resources["io_manager"], "features", days)
    landed = demo_flights["_date"].isin([days[0], days[2]]).sum() + 30  # the bad file's rows
    assert len(raw) == landed
    assert len(features) == len(stored) == len(raw) - 5
    key = list(KEY_COLUMNS)
    pd.testing.assert_frame_equal(
        features.sort_values(key, ignore_index=True),
        stored.sort_values(key, ignore_index=True),
    )


@pytest.mark.parametrize("years", [1, 3])
def test_a_replicated_day_is_the_same_flights_years_later_and_all_still_valid(day_csv, years):
    original = day_csv("2013-03-10").decode()
    shifted = year_shifted(original, years)
    day = f"{2013 + years}-03-10"
    parsed = parse_landing_file(shifted.encode(), f"flights_{day}.csv", day).rows
    before = parse_landing_file(original.encode(), "flights_2013-03-10.csv", "2013-03-10").rows

    assert "2013-" not in shifted
    assert len(parsed) == len(before) > 800
    assert set(parsed["year"]) == {2013 + years}
    # time_hour is UTC, so an evening flight's is the next day's date: each moves by whole years.
    expected = before["time_hour"].str.replace("2013-", f"{2013 + years}-", regex=False)
    assert parsed["time_hour"].tolist() == expected.tolist()
    assert parsed["time_hour"].str.startswith(f"{2013 + years}-03-1").all()
    # A replica that quarantined rows would make the larger scales' time per row (figure 7) cheaper.
    assert len(validate_flights(parsed).valid) == len(validate_flights(before).valid)


def test_year_shifted_by_zero_years_is_the_file_itself(day_csv):
    original = day_csv().decode()
    assert year_shifted(original, 0) is original


def test_steal_percent_is_the_stolen_share_of_all_cpu_time_between_two_reads():
    before = [100, 0, 50, 800, 10, 0, 0, 40]
    after = [300, 0, 100, 1500, 10, 0, 0, 90]  # 1,000 ticks spent, 50 of them stolen
    assert steal_percent(before, after) == 5.0
    assert steal_percent(before, before) == 0.0


def test_a_figures_side_is_its_median_run_with_every_runs_seconds_in_the_order_taken():
    runs = [
        {"seconds": 7.0, "steal_percent": 0.5, "run_id": "a"},
        {"seconds": 5.0, "steal_percent": 2.0, "run_id": "b"},
        {"seconds": 6.0, "steal_percent": 0.1, "run_id": "c"},
    ]
    side = paired_runs("backfill", runs)
    assert side["backfill"]["run_id"] == "c"
    assert side["backfill_all_seconds"] == [7.0, 5.0, 6.0]
    assert side["backfill_all_steal_percent"] == [0.5, 2.0, 0.1]


def test_the_table_marks_a_missed_target_and_leaves_context_figures_unjudged():
    assert TARGETS["backfill_vs_bare"] == ("<=", 1.5)
    assert TARGETS["floor_backfill_vs_bare"][1] is None
    report = {
        "figures": {
            "backfill_vs_bare": 1.64,
            "new_day_growth_4x_history": 1.03,
            "floor_backfill_vs_bare": 0.2,
        }
    }
    rows = {line.split()[0]: line.split() for line in table(report).splitlines()[1:]}
    assert rows["backfill_vs_bare"][-1] == "NO"
    assert rows["new_day_growth_4x_history"][-1] == "yes"
    assert rows["floor_backfill_vs_bare"][-2:] == ["-", "-"]


def test_the_floor_is_the_daily_assets_shape_doing_no_work():
    """bench/floor.py stands for what any graph of our daily assets' shape pays Dagster (figures 1f
    and 2's floor): the same keys, upstream keys, partitions and backfill policy as the code location."""
    ours = {
        key: asset
        for asset in defs().assets
        if isinstance(asset, dg.AssetsDefinition)
        for key in asset.keys
        if key.to_user_string() in DAILY
    }
    floor_assets = [floor.raw_data, floor.validated_data, floor.features]
    floors = {key: asset for asset in floor_assets for key in asset.keys}
    assert set(floors) == set(ours) == {dg.AssetKey(name) for name in DAILY}
    for key, asset in floors.items():
        daily_upstream = {dep for dep in ours[key].asset_deps[key] if dep in ours}
        assert asset.asset_deps[key] == daily_upstream, key
        assert asset.partitions_def == ours[key].partitions_def == landing_days
        assert asset.backfill_policy == ours[key].backfill_policy
    days = ["2013-01-01", "2013-01-02", "2013-01-03"]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landing_days.name, days)
        result = materialize_range(floor_assets, days, instance=instance)
    events = result.get_asset_materialization_events()
    assert sorted((e.asset_key.to_user_string(), e.partition) for e in events) == sorted(
        (name, day) for name in DAILY for day in days
    )
