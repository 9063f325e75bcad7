"""The whole graph in process over January 2013 (31 real landing files), asserting values."""

import hashlib
import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import requests

from ml_assets.assets import metadata
from ml_assets.assets.metadata import recorded_partition_facts
from ml_assets.automation.landing_sensor import last_landed_sha256
from ml_assets.definitions import defs
from ml_assets.domain.contract import OUTCOME_COLUMNS
from ml_assets.domain.tables import (
    FEATURE_COLUMNS,
    FEATURE_TYPES,
    QUARANTINE_TYPES,
    RAW_TYPES,
    VALIDATED_TYPES,
    WEATHER_FEATURES,
)
from ml_assets.partitions import landing_days
from ml_assets.resources.landing import LocalLandingZone
from ml_assets.resources.mlflow import MlflowTracking
from ml_assets_tests.conftest import (
    CountsReads,
    make_resources,
    materialize_range,
    registry_client,
    stored_days,
)

ALL_CHECKS = [
    "files_parse",
    "required_columns_present",
    "row_count_in_band",
    "no_duplicate_files",
    "has_rows",
    "required_columns_not_null",
    "value_ranges",
    "unique_flight_key",
    "rows_reconcile",
    "quarantine_share",
    "no_leakage",
    "drift_psi",
    "weather_joined",
    "holdout_roc_auc_floor",
    "calibration_vs_champion",
    "origin_slices_vs_champion",
    "champion_reproduces",
    "champion_live_quality",
    "column_schema_unchanged",
]
DAYS = [f"2013-01-{d:02d}" for d in range(1, 32)]
TRAIN = {
    "ops": {
        "trained_model": {"config": {"holdout_days": 7, "max_iter": 150}},
        "features": {"config": {"leakage_sample_rows": 10_000}},  # of the month's 27,004 rows
    }
}


@pytest.fixture(scope="module")
def graph(tmp_path_factory, landed_month):
    root = tmp_path_factory.mktemp("graph")
    resources = make_resources(root, landed_month)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landing_days.name, DAYS)
        definitions = defs()
        assets = [*definitions.assets, *definitions.asset_checks]
        first = materialize_range(assets, DAYS, instance=instance, resources=resources, run_config=TRAIN)
        yield {"assets": assets, "instance": instance, "resources": resources, "root": root, "first": first}


def materializations(result, key: str) -> list:
    return [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(key)]


def meta(event, name):
    return event.materialization.metadata[name].value


def retrain(graph, run_config: dict, raise_on_error: bool = True):
    """Train a new challenger on the stored features and run the champion decision."""
    return dg.materialize(
        graph["assets"],
        selection=["trained_model", "production_model"],
        instance=graph["instance"],
        resources=graph["resources"],
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def roll_back(graph, raise_on_error: bool = True):
    return dg.materialize(
        graph["assets"],
        selection=["production_model"],
        instance=graph["instance"],
        resources=graph["resources"],
        run_config={"ops": {"production_model": {"config": {"rollback": True}}}},
        raise_on_error=raise_on_error,
    )


def registry(resources):
    tracking = resources["mlflow"]
    return registry_client(tracking.tracking_uri), tracking.registered_model_name


def test_backfill_is_one_run_and_every_check_passes(graph):
    first = graph["first"]
    assert first.success
    assert len(graph["instance"].get_runs()) == 1
    checks = {
        (e.asset_key.to_user_string(), e.check_name): e.passed for e in first.get_asset_check_evaluations()
    }
    assert {name for _, name in checks} == {*ALL_CHECKS, "label_rate_bounds_check"}
    assert all(checks.values()), [
        (e.asset_key, e.check_name, e.description)
        for e in first.get_asset_check_evaluations()
        if not e.passed
    ]
    # Three layers watched for schema changes (in-step); Dagster's builder holds the label rate in bounds.
    assert sorted(key for key, name in checks if name == "column_schema_unchanged") == [
        "features",
        "raw_data",
        "validated_data",
    ]
    assert len(materializations(first, "raw_data")) == 31
    assert len(materializations(first, "features")) == 31
    # What the UI shows of a table: its first rows, on the run's last day.
    by_day = {e.partition: e.materialization.metadata for e in materializations(first, "features")}
    assert "preview" not in by_day[DAYS[0]]
    features = by_day[DAYS[-1]]
    preview = features["preview"].value
    assert len(preview.records) == 5
    assert preview.records[0].data["landing_day"] in DAYS
    # Each day's own row count and source: a table of the last 28 days on the run's last day, one of
    # the days before on its first; every day names both.
    raw = {e.partition: e.materialization.metadata for e in materializations(first, "raw_data")}
    assert {m["per_day_facts_on"].value for m in raw.values()} == {DAYS[-1]}
    assert {m["earlier_per_day_facts_on"].value for m in raw.values()} == {DAYS[0]}
    assert "dagster/row_count" not in raw["2013-01-15"]
    recent, earlier = (
        {r.data["day"]: r.data for r in raw[holder]["per_day_facts"].value.records}
        for holder in (DAYS[-1], DAYS[0])
    )
    assert (sorted(earlier), sorted(recent)) == (DAYS[:3], DAYS[3:])
    per_day = {**earlier, **recent}
    assert per_day["2013-01-15"]["dagster/row_count"] == 894
    assert per_day["2013-01-15"]["source_path"].endswith("flights_2013-01-15.csv")
    assert sum(r["dagster/row_count"] for r in per_day.values()) == 27004
    assert features["rows_in_run"].value == 27004
    assert features["compute_threads"].value == 2  # the compute resource's (conftest)
    (weather,) = [e for e in first.get_asset_check_evaluations() if e.check_name == "weather_joined"]
    assert weather.metadata["days_without_weather_file"].value == 0  # each day's file was read
    assert weather.metadata["share_with_weather"].value > 0.95
    (leakage,) = [e for e in first.get_asset_check_evaluations() if e.check_name == "no_leakage"]
    assert leakage.passed
    assert leakage.metadata["rows_scored"].value == 10_000
    assert 0.6 < leakage.metadata["max_single_feature_auc"].value < 0.95  # congestion carries signal
    # Derived tables: the run's totals on every day, the counts by day in the reconcile check.
    assert "dagster/row_count" not in by_day[DAYS[0]]
    assert by_day[DAYS[0]]["rows_in_run"].value == 27004
    # One frame, one schema: compact column types on every day; the UI's schema is the definition's.
    assert "dagster/column_schema" not in features
    assert by_day[DAYS[0]]["column_types"].value == by_day[DAYS[-1]]["column_types"].value
    (reconcile,) = [e for e in first.get_asset_check_evaluations() if e.check_name == "rows_reconcile"]
    counted = {r.data["day"]: r.data for r in reconcile.metadata["rows_by_day"].value.records}
    assert sorted(counted) == DAYS
    assert counted["2013-01-15"] == {"day": "2013-01-15", "raw": 894, "valid": 894, "quarantined": 0}


def test_a_day_after_the_backfill_reads_the_backfills_per_day_facts(graph, landed_month, monkeypatch):
    """The row-count check of a one-day run takes its band from the 14 days the backfill recorded,
    and the sensor's re-land check finds a backfilled day's sha256; a one-day run's facts are on its
    own event."""
    instance = graph["instance"]
    # The band's 14 days include the backfill's last day, which holds their table: it is read from
    # the events already fetched (no lookup of the run and its window), and the earlier days' table
    # on the first day not at all.
    run_lookups, tables_read = [], []
    monkeypatch.setattr(instance, "get_run_record_by_id", run_lookups.append)
    read_table = metadata._facts_table
    monkeypatch.setattr(
        metadata, "_facts_table", lambda r: tables_read.append(r.partition_key) or read_table(r)
    )
    window = recorded_partition_facts(instance, "raw_data", DAYS[-14:])
    assert (run_lookups, tables_read) == ([], [DAYS[-1]])
    assert [window[d]["dagster/row_count"] for d in DAYS[-14:]] == [
        len(pd.read_csv(landed_month / f"flights_{d}.csv")) for d in DAYS[-14:]
    ]
    monkeypatch.undo()
    # An earlier day, asked alone: its holder's event is found by the run's window.
    assert recorded_partition_facts(instance, "raw_data", [DAYS[1]])[DAYS[1]]["dagster/row_count"] == len(
        pd.read_csv(landed_month / f"flights_{DAYS[1]}.csv")
    )
    # features' facts by day: the sha256 of the weather file each day read (the weather sensor's
    # identical re-land check), from the same kind of table.
    read = recorded_partition_facts(instance, "features", [DAYS[0], DAYS[-1]])
    assert [read[d]["weather_sha256"] for d in (DAYS[0], DAYS[-1])] == [
        hashlib.sha256((landed_month / f"weather_{d}.csv").read_bytes()).hexdigest()
        for d in (DAYS[0], DAYS[-1])
    ]
    day = DAYS[-1]
    result = dg.materialize(
        graph["assets"],
        selection=["raw_data"],
        partition_key=day,
        instance=graph["instance"],
        resources=graph["resources"],
    )
    (band,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "row_count_in_band"]
    assert band.passed
    assert band.metadata["earlier_days_read"].value == 14
    assert band.metadata["days_judged"].value == 1
    recorded = recorded_partition_facts(instance, "raw_data", ["2013-01-15", day, "2013-02-01"])
    assert sorted(recorded) == ["2013-01-15", day]  # a day never materialized has no facts
    assert recorded_partition_facts(instance, "raw_data", ["2013-02-01"]) == {}  # nor asked alone
    assert recorded["2013-01-15"]["dagster/row_count"] == 894
    assert recorded[day]["dagster/row_count"] == meta(
        materializations(result, "raw_data")[0], "dagster/row_count"
    )
    for landed in ["2013-01-15", day]:
        on_disk = hashlib.sha256((landed_month / f"flights_{landed}.csv").read_bytes()).hexdigest()
        assert last_landed_sha256(instance, landed) == on_disk


@pytest.mark.parametrize(
    ("asset", "declared"),
    [
        ("raw_data", RAW_TYPES),
        ("validated_data", VALIDATED_TYPES),
        ("quarantine", QUARANTINE_TYPES),
        ("features", FEATURE_TYPES),
    ],
)
def test_every_table_is_written_as_its_definition_declares(graph, asset, declared):
    """The column schema the UI shows from the definitions is what a run writes: names, order and
    dtypes (the preview keeps the frame's order, column_types its dtypes on every day)."""
    (spec,) = [
        s
        for a in graph["assets"]
        if isinstance(a, dg.AssetsDefinition)
        for s in a.specs
        if s.key.path == [asset]
    ]
    schema = spec.metadata["dagster/column_schema"]
    assert [(c.name, c.type) for c in schema.columns] == list(declared.items())
    events = materializations(graph["first"], asset)
    assert len(events) == len(DAYS)
    for event in events:
        assert meta(event, "column_types") == declared
    (last,) = [e for e in events if e.partition == DAYS[-1]]
    assert [(c.name, c.type) for c in meta(last, "preview").schema.columns] == list(declared.items())
    stored = pd.read_parquet(graph["root"] / "warehouse" / asset / f"{DAYS[-1]}.parquet")
    assert {name: str(dtype) for name, dtype in stored.dtypes.items()} == declared


def test_drift_is_judged_against_the_champions_training_profile(graph):
    """An ingest of one day judges drift against the profile production_model recorded for the
    champion: the features step needs no MLflow resource."""
    features_asset = next(a for a in graph["assets"] if dg.AssetKey("features") in getattr(a, "keys", ()))
    assert "mlflow" not in features_asset.required_resource_keys
    result = dg.materialize(
        graph["assets"],
        selection=["features"],
        partition_key=DAYS[-1],
        instance=graph["instance"],
        resources=graph["resources"],
    )
    (drift,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "drift_psi"]
    champion = graph["resources"]["io_manager"].load_input(
        dg.build_input_context(asset_key=dg.AssetKey("production_model"))
    )
    assert drift.metadata["reference"].value == f"champion version {champion['champion_version']}"
    day_rows = meta(materializations(result, "features")[0], "dagster/row_count")
    assert drift.metadata["rows"].value == day_rows
    # The day's columns were compared with the backfill's, and match.
    (schema,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "column_schema_unchanged"]
    assert schema.passed
    assert schema.metadata["compared_with"].value == "previous materialization"
    assert schema.metadata["columns"].value == len(
        meta(materializations(result, "features")[0], "column_types")
    )
    # The profile is the one the champion's MLflow run logged.
    client, name = registry(graph["resources"])
    run_id = client.get_model_version_by_alias(name, "champion").run_id
    logged = json.loads(Path(client.download_artifacts(run_id, "reference_profile.json")).read_text())
    assert champion["reference_profile"] == logged
    worst = drift.metadata["worst_features"].value
    assert len(worst) == 5
    assert set(worst) <= set(logged)
    assert drift.metadata["max_psi"].value == max(worst.values())
    assert drift.passed == (drift.metadata["max_psi"].value <= 0.2)


def test_a_day_without_its_weather_file_gets_missing_weather_and_a_warning(graph, landed_month, tmp_path):
    day = DAYS[-1]
    for landed in landed_month.iterdir():
        if landed.name != f"weather_{day}.csv":
            (tmp_path / landed.name).symlink_to(landed)
    resources = {**graph["resources"], "landing": LocalLandingZone(landing_dir=str(tmp_path))}
    stored = Path(graph["root"]) / "warehouse" / "features" / f"{day}.parquet"
    with_weather = pd.read_parquet(stored)

    def features_of(resources):
        return dg.materialize(
            graph["assets"],
            selection=["features"],
            partition_key=day,
            instance=graph["instance"],
            resources=resources,
        )

    result = features_of(resources)
    (check,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "weather_joined"]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert check.metadata["days_without_weather_file"].value == 1
    assert check.metadata["first_days_without"].value == [day]
    assert check.metadata["share_with_weather"].value == 0.0
    assert result.success  # a warning: the day's other features still flow downstream
    without = pd.read_parquet(stored)
    assert without["temp"].isna().all()
    assert without["seats"].notna().any()  # the other features are there
    pd.testing.assert_frame_equal(
        without.drop(columns=list(WEATHER_FEATURES)), with_weather.drop(columns=list(WEATHER_FEATURES))
    )
    logs = [e.user_message for e in graph["instance"].all_logs(result.run_id)]
    assert any(f"{tmp_path / f'weather_{day}.csv'}" in m and "no weather file" in m for m in logs)
    # Landed again, the day's features get their weather back (and later tests the full month).
    restored = features_of(graph["resources"])
    (check,) = [e for e in restored.get_asset_check_evaluations() if e.check_name == "weather_joined"]
    assert check.passed
    assert check.metadata["days_without_weather_file"].value == 0
    pd.testing.assert_frame_equal(pd.read_parquet(stored), with_weather)


def test_rows_reconcile_with_the_landing_files(graph, demo_flights):
    io = graph["resources"]["io_manager"]
    raw = pd.concat(pd.read_parquet(f"{io.base_dir}/raw_data/{d}.parquet") for d in DAYS)
    valid = pd.concat(pd.read_parquet(f"{io.base_dir}/validated_data/{d}.parquet") for d in DAYS)
    quarantine = pd.concat(pd.read_parquet(f"{io.base_dir}/quarantine/{d}.parquet") for d in DAYS)
    january = int(demo_flights["_date"].isin(DAYS).sum())
    assert len(raw) == january == 27004
    assert len(valid) + len(quarantine) == len(raw)
    assert len(quarantine) == 0  # the demo month is clean
    per_day = raw.groupby("landing_day").size()
    assert per_day["2013-01-15"] == 894


def test_features_hold_no_outcome_and_one_row_per_valid_flight(graph):
    io = graph["resources"]["io_manager"]
    features = pd.concat(pd.read_parquet(f"{io.base_dir}/features/{d}.parquet") for d in DAYS)
    assert not set(OUTCOME_COLUMNS) & set(features.columns)
    assert len(features) == 27004
    assert 0.15 < features["label"].mean() < 0.45


def test_model_beats_chance_and_becomes_champion(graph):
    (trained,) = materializations(graph["first"], "trained_model")
    assert meta(trained, "holdout_roc_auc") > 0.65
    assert meta(trained, "holdout_rows") > 5000
    (production,) = materializations(graph["first"], "production_model")
    assert meta(production, "champion_version") == "1"
    assert meta(production, "promoted") is True
    client, name = registry(graph["resources"])
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.version == 1
    assert champion.tags["promotion_decision"] == "promoted"
    assert client.get_model_version_by_alias(name, "challenger").version == 1
    run = client.get_run(meta(trained, "mlflow_run_id"))
    assert run.data.tags["dagster_run_id"] == graph["first"].run_id
    assert run.data.metrics["holdout_roc_auc"] == pytest.approx(meta(trained, "holdout_roc_auc"))
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster_asset"] == "trained_model"
    assert run.data.tags["dagster_partition_range"] == "2013-01-01..2013-01-31"
    assert run.data.tags["dagster_partitions"] == "31"
    assert run.data.tags["dagster_code_version"] == "1"
    assert len(run.data.tags["git_commit"]) in {40, len("unknown")}
    assert run.data.tags["holdout_days"] == "2013-01-25..2013-01-31"
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == run.data.tags["training_dataset_digest"]
    # The dataset is what the model was fitted on: its input columns and the label, every training row.
    assert json.loads(dataset_input.dataset.profile)["num_rows"] == meta(trained, "train_rows")
    logged_columns = [c["name"] for c in json.loads(dataset_input.dataset.schema)["mlflow_colspec"]]
    assert logged_columns == [*FEATURE_COLUMNS, "label"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "roc_curve.png",
        "calibration_curve.png",
        "feature_importance.png",  # feature_importance, a step of its own, logs to the same run
        "feature_importance.json",
        "reference_profile.json",
        "holdout_sample.parquet",
    } <= artifacts
    assert meta(trained, "plot_roc_curve").startswith("![plot](data:image/png;base64,")
    (explained,) = materializations(graph["first"], "feature_importance")
    assert meta(explained, "model_version") == meta(trained, "model_version")
    assert meta(explained, "sample_rows") == min(4000, meta(trained, "holdout_rows"))
    top = meta(explained, "top_features")
    assert len(top) == 10
    assert list(top.values()) == sorted(top.values(), reverse=True)
    logged = Path(client.download_artifacts(run.info.run_id, "feature_importance.json", str(graph["root"])))
    logged = json.loads(logged.read_text())
    assert {k: logged[k] for k in top} == top


def test_the_benchmarks_bare_fit_is_the_model_the_step_trained(graph):
    """bench/bare.py's fit is figure 3's other side: on the same features and config it must fit
    the step's model (its holdout scores to the last digit), or the ratio compares different fits."""
    from bench import bare
    from ml_assets.assets.training import TrainingConfig
    from ml_assets.domain.training import ModelParams, evaluate

    features = stored_days(graph["resources"]["io_manager"], "features", DAYS)
    # As the bench passes the config to its bare process: the fields, not the config class.
    settings = TrainingConfig(**TRAIN["ops"]["trained_model"]["config"]).model_dump()
    holdout = (settings["holdout_days"], settings["max_holdout_fraction"])
    model = bare.fit(features, *holdout, ModelParams.from_settings(settings))
    scores, labels = bare.holdout_scores(model, features, *holdout)
    (trained,) = materializations(graph["first"], "trained_model")
    assert len(labels) == meta(trained, "holdout_rows")
    assert evaluate(labels, scores)["roc_auc"] == meta(trained, "holdout_roc_auc")


def test_worse_model_does_not_replace_the_champion(graph):
    weak = {
        "ops": {
            "trained_model": {
                "config": {
                    "holdout_days": 7,
                    "max_iter": 3,
                    "max_leaf_nodes": 3,
                    "learning_rate": 0.01,
                    "min_holdout_roc_auc": 0.5,
                }
            }
        }
    }
    result = retrain(graph, weak)
    assert result.success
    (production,) = materializations(result, "production_model")
    assert meta(production, "promoted") is False
    assert meta(production, "champion_version") == "1"
    outcomes = {e.check_name: e for e in result.get_asset_check_evaluations()}
    # A 3-iteration model is far less sharp than the champion: both comparisons warn.
    assert outcomes["calibration_vs_champion"].passed is False
    assert outcomes["calibration_vs_champion"].severity == dg.AssetCheckSeverity.WARN
    assert outcomes["origin_slices_vs_champion"].passed is False
    assert outcomes["champion_reproduces"].passed is True
    assert outcomes["champion_reproduces"].metadata["champion_version"].value == "1"
    assert meta(production, "challenger_holdout_roc_auc") < meta(production, "champion_holdout_roc_auc")
    client, name = registry(graph["resources"])
    assert client.get_model_version_by_alias(name, "champion").version == 1
    assert client.get_model_version_by_alias(name, "challenger").version == 2
    assert client.get_model_version(name, "2").tags["promotion_decision"] == "kept_champion"


def test_blocking_auc_floor_stops_promotion(graph):
    strict = {
        "ops": {"trained_model": {"config": {"holdout_days": 7, "max_iter": 20, "min_holdout_roc_auc": 0.99}}}
    }
    result = retrain(graph, strict, raise_on_error=False)
    assert not result.success
    outcomes = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert outcomes["holdout_roc_auc_floor"] is False
    assert materializations(result, "production_model") == []
    client, name = registry(graph["resources"])
    assert client.get_model_version_by_alias(name, "champion").version == 1


def test_rollback_returns_the_alias_to_the_previous_champion(graph):
    forced = {
        "ops": {
            "trained_model": {"config": {"holdout_days": 7, "max_iter": 150}},
            "production_model": {"config": {"promotion_margin": -1.0}},  # promote whatever comes
        }
    }
    promoted = retrain(graph, forced)
    (production,) = materializations(promoted, "production_model")
    new_champion = meta(production, "champion_version")
    assert meta(production, "action") == "promoted"
    assert new_champion != "1"
    client, name = registry(graph["resources"])
    rollback = roll_back(graph)
    (rolled,) = materializations(rollback, "production_model")
    assert meta(rolled, "action") == "rolled_back"
    assert meta(rolled, "champion_version") == "1"
    assert meta(rolled, "decision") == f"rolled back from version {new_champion} to version 1"
    assert str(client.get_registered_model(name).aliases["champion"]) == "1"
    assert (
        client.get_model_version(name, new_champion).tags["rolled_back_by_dagster_run_id"] == rollback.run_id
    )
    assert client.get_model_version(name, "1").tags["restored_from"] == new_champion
    # Nothing was promoted before version 1: a second rollback refuses and leaves the alias alone.
    again = roll_back(graph, raise_on_error=False)
    assert not again.success
    assert str(client.get_registered_model(name).aliases["champion"]) == "1"


def test_predictions_carry_the_champion_version(graph):
    io = graph["resources"]["io_manager"]
    scored = pd.concat(pd.read_parquet(f"{io.base_dir}/predictions/{d}.parquet") for d in DAYS)
    assert len(scored) == 27004
    assert set(scored["model_version"]) == {"1"}
    assert scored["delay_probability"].between(0, 1).all()
    (monitoring,) = materializations(graph["first"], "model_monitoring")
    assert meta(monitoring, "labelled_rows") == int((scored["flight_date"] >= "2013-01-18").sum())
    assert meta(monitoring, "live_roc_auc") > 0.65
    assert meta(monitoring, "degraded") is False


def test_degraded_champion_launches_a_retrain(graph):
    from ml_assets.automation.degradation import retrain_on_degradation

    strict = {"ops": {"model_monitoring": {"config": {"min_live_roc_auc": 0.99}}}}
    result = dg.materialize(
        graph["assets"],
        selection=["model_monitoring"],
        instance=graph["instance"],
        resources=graph["resources"],
        run_config=strict,
    )
    (check,) = result.get_asset_check_evaluations()
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert check.description.startswith("live ROC AUC")
    record = graph["instance"].fetch_materializations(dg.AssetKey("model_monitoring"), limit=1).records[0]
    context = dg.build_sensor_context(instance=graph["instance"])
    (request,) = retrain_on_degradation.evaluate_tick(context).run_requests
    assert request.run_key == f"degraded:{record.run_id}"
    assert request.tags["ml_assets/retrain_reason"].startswith("live ROC AUC")


DROPPED: dict[str, str] = {}


class DropsOnce(MlflowTracking):
    """A tracking server that loses its answer once: the alias `drop_on` names ("champion alias") is
    set, then the connection drops, so the step retries against a registry that already changed."""

    drop_on: str

    def set_alias(self, alias: str, version: str) -> None:
        super().set_alias(alias, version)
        call = f"{alias} alias"
        if call == self.drop_on and call not in DROPPED:
            DROPPED[call] = version
            raise requests.exceptions.ConnectionError("Connection refused")


def drops_once(graph, call: str) -> DropsOnce:
    DROPPED.pop(call, None)
    tracking = graph["resources"]["mlflow"]
    return DropsOnce(
        tracking_uri=tracking.tracking_uri, artifact_location=tracking.artifact_location, drop_on=call
    )


def retried_steps(result) -> list[str]:
    return [e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]


def test_a_training_retry_after_registration_registers_no_second_version(graph):
    client, name = registry(graph["resources"])
    before = len(client.search_model_versions(f"name='{name}'"))
    result = dg.materialize(
        graph["assets"],
        selection=["trained_model"],
        instance=graph["instance"],
        resources={**graph["resources"], "mlflow": drops_once(graph, "challenger alias")},
        run_config={"ops": {"trained_model": {"config": {"holdout_days": 7, "max_iter": 40}}}},
    )
    assert retried_steps(result) == ["trained_model"]
    (trained,) = materializations(result, "trained_model")
    version = DROPPED["challenger alias"]
    assert meta(trained, "model_version") == version
    assert len(client.search_model_versions(f"name='{name}'")) == before + 1
    assert str(client.get_registered_model(name).aliases["challenger"]) == version
    run = client.get_run(meta(trained, "mlflow_run_id"))
    assert (run.info.status, run.data.tags["dagster_run_id"]) == ("FINISHED", result.run_id)
    assert client.get_model_version(name, version).run_id == run.info.run_id


def test_a_decision_retried_after_the_alias_moved_is_recorded_as_the_promotion(graph):
    forced = {
        "ops": {
            "trained_model": {"config": {"holdout_days": 7, "max_iter": 40}},
            "production_model": {"config": {"promotion_margin": -1.0}},
        }
    }
    result = dg.materialize(
        graph["assets"],
        selection=["trained_model", "production_model"],
        instance=graph["instance"],
        resources={**graph["resources"], "mlflow": drops_once(graph, "champion alias")},
        run_config=forced,
    )
    assert retried_steps(result) == ["production_model"]
    (production,) = materializations(result, "production_model")
    challenger = DROPPED["champion alias"]
    assert (meta(production, "action"), meta(production, "champion_version")) == ("promoted", challenger)
    assert meta(production, "decision").startswith("promoted by an earlier attempt")
    client, name = registry(graph["resources"])
    tags = client.get_model_version(name, challenger).tags
    assert (tags["promotion_decision"], tags["promotion_dagster_run_id"]) == ("promoted", result.run_id)
    # Deciding again later on the same challenger keeps it and leaves that record alone.
    again = dg.materialize(
        graph["assets"],
        selection=["production_model"],
        instance=graph["instance"],
        resources=graph["resources"],
        run_config={"ops": {"production_model": forced["ops"]["production_model"]}},
    )
    (kept,) = materializations(again, "production_model")
    assert (meta(kept, "action"), meta(kept, "champion_version")) == ("kept_champion", challenger)
    assert meta(kept, "decision").endswith(f"(promoted by Dagster run {result.run_id})")
    assert client.get_model_version(name, challenger).tags["promotion_dagster_run_id"] == result.run_id
    assert str(client.get_registered_model(name).aliases["champion"]) == challenger


def test_a_rollback_retried_after_the_alias_moved_goes_back_one_version_only(graph):
    client, name = registry(graph["resources"])
    before = str(client.get_registered_model(name).aliases["champion"])
    forced = {
        "ops": {
            "trained_model": {"config": {"holdout_days": 7, "max_iter": 40}},
            "production_model": {"config": {"promotion_margin": -1.0}},
        }
    }
    (promoted,) = materializations(retrain(graph, forced), "production_model")
    newest = meta(promoted, "champion_version")
    rollback = dg.materialize(
        graph["assets"],
        selection=["production_model"],
        instance=graph["instance"],
        resources={**graph["resources"], "mlflow": drops_once(graph, "champion alias")},
        run_config={"ops": {"production_model": {"config": {"rollback": True}}}},
    )
    assert retried_steps(rollback) == ["production_model"]
    (rolled,) = materializations(rollback, "production_model")
    assert (meta(rolled, "action"), meta(rolled, "champion_version")) == ("rolled_back", before)
    assert meta(rolled, "decision") == f"rolled back from version {newest} to version {before}"
    assert str(client.get_registered_model(name).aliases["champion"]) == before
    assert client.get_model_version(name, before).tags["restored_from"] == newest


def test_a_backfill_hands_each_daily_table_to_the_next_step_instead_of_reading_it_back(
    landed_month, tmp_path
):
    """Our assets' tables qualify for the IO manager's hand-over (rows in day order, a plain index,
    types that survive Parquet): a range run of the daily assets reads none of them back, and a later
    run reads from storage what the first one wrote."""
    days = DAYS[:5]
    resources = {**make_resources(tmp_path, landed_month), "io_manager": CountsReads(base_dir=str(tmp_path))}
    daily = ["raw_data", "validated_data", "quarantine", "features"]
    CountsReads.reads.clear()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landing_days.name, days)
        definitions = defs()
        assets = [*definitions.assets, *definitions.asset_checks]
        first = materialize_range(assets, days, instance=instance, resources=resources, selection=daily)
        assert len(materializations(first, "features")) == 5
        assert CountsReads.reads == []
        again = materialize_range(
            assets, days, instance=instance, resources=resources, selection=["features"]
        )
        assert sorted(CountsReads.reads) == [f"validated_data/{d}.parquet" for d in days]
    written = pd.concat(pd.read_parquet(tmp_path / "features" / f"{d}.parquet") for d in days)
    assert materializations(again, "features")[-1].materialization.metadata["rows_in_run"].value == len(
        written
    )
