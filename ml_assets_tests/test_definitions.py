import subprocess
import sys

import dagster as dg
import pytest

from ml_assets.definitions import defs
from ml_assets.resources.environment import environment_name, resources_for

EXPECTED_ASSETS = {
    "raw_data",
    "weather",
    "planes",
    "validated_data",
    "quarantine",
    "features",
    "trained_model",
    "feature_importance",
    "production_model",
    "predictions",
    "model_monitoring",
}


HEAVY = ("pandas", "numpy", "pyarrow", "sklearn", "scipy", "mlflow", "matplotlib", "boto3", "kubernetes")


def test_loading_the_code_location_imports_no_data_or_ml_library():
    """A code server, run worker or step process loads the definitions before any step: the data
    and ML libraries are imported by the steps that use them, not at load."""
    script = (
        "import sys\n"
        "from ml_assets.definitions import defs\n"
        "defs()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""


def test_tables_are_typed_as_data_frames_on_every_input_and_output():
    import pandas as pd

    from ml_assets.assets.metadata import DataFrame

    assert DataFrame.type_check(None, pd.DataFrame({"a": [1]})).success
    assert not DataFrame.type_check(None, {"a": [1]}).success
    assert not DataFrame.type_check(None, pd.Series([1])).success
    graph = defs().resolve_asset_graph()
    features = graph.assets_def_for_key(dg.AssetKey("features"))
    assert features.op.ins["validated_data"].dagster_type.display_name == "DataFrame"
    assert features.op.outs["result"].dagster_type.display_name == "DataFrame"


def test_definitions_load_with_the_whole_graph():
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == EXPECTED_ASSETS
    assert graph.get(dg.AssetKey("features")).parent_keys == {
        dg.AssetKey("validated_data"),
        dg.AssetKey("weather"),
        dg.AssetKey("planes"),
    }
    assert graph.get(dg.AssetKey("production_model")).parent_keys == {
        dg.AssetKey("trained_model"),
        dg.AssetKey("features"),
    }
    # Explaining a challenger is off the path to the champion decision.
    assert graph.get(dg.AssetKey("feature_importance")).parent_keys == {
        dg.AssetKey("trained_model"),
        dg.AssetKey("features"),
    }
    assert graph.get(dg.AssetKey("feature_importance")).child_keys == set()
    jobs = {job.name for job in definitions.get_repository_def().get_all_jobs()}
    assert {"ingest", "retrain"} <= jobs
    assert definitions.get_sensor_def("landing_sensor").default_status == dg.DefaultSensorStatus.RUNNING


def test_every_asset_and_check_is_described_and_grouped():
    graph = defs().resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.group_name in {"ingestion", "validation", "features", "training", "deployment", "serving"}
        assert node.owners == ["team:ml-platform"], key
        assert node.kinds, key
    blocking = {
        check.name
        for assets_def in defs().assets
        if isinstance(assets_def, dg.AssetsDefinition)
        for check in assets_def.check_specs
        if check.blocking
    }
    assert {"holdout_roc_auc_floor", "rows_reconcile", "has_rows"} <= blocking


def test_partitioned_assets_backfill_as_one_run():
    executable = [a for a in defs().assets if isinstance(a, dg.AssetsDefinition)]
    assert len(executable) == 8
    for assets_def in executable:
        assert assets_def.backfill_policy == dg.BackfillPolicy.single_run()


def test_environment_is_chosen_by_one_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("ML_ASSETS_ENV", raising=False)
    assert environment_name() == "local"
    monkeypatch.setenv("ML_ASSETS_ENV", "staging")
    with pytest.raises(ValueError, match="ML_ASSETS_ENV='staging'"):
        environment_name()
    monkeypatch.setenv("ML_ASSETS_LANDING_DIR", str(tmp_path / "in"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    resources = resources_for("local")
    assert resources["landing"].landing_dir == str(tmp_path / "in")
    assert resources["mlflow"].tracking_uri == "http://127.0.0.1:5999"
    assert resources["mlflow"].ui_url == "http://127.0.0.1:5999"  # the server is the UI
    assert resources["mlflow"].artifact_location is None  # the server stores artifacts
    monkeypatch.setenv("ML_ASSETS_REGISTERED_MODEL", "delays_v2")
    assert resources_for("local")["mlflow"].registered_model_name == "delays_v2"


def test_automation_runs_by_itself_on_a_fresh_instance():
    definitions = defs()
    for name in (
        "landing_sensor",
        "weather_sensor",
        "automation",
        "run_failure_records",
        "retrain_on_degradation",
    ):
        assert definitions.get_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    schedule = definitions.get_schedule_def("retrain_schedule")
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    jobs = {job.name for job in definitions.get_repository_def().get_all_jobs()}
    assert {"ingest", "retrain", "promote", "rollback"} <= jobs


def test_freshness_windows_come_from_the_environment_at_load(monkeypatch):
    monkeypatch.setenv("ML_ASSETS_MODEL_WARN_MINUTES", "1")
    monkeypatch.setenv("ML_ASSETS_MODEL_FAIL_MINUTES", "3")
    monkeypatch.setenv("ML_ASSETS_RETRAIN_CRON", "*/5 * * * *")
    monkeypatch.setenv("ML_ASSETS_AUTOMATION_INTERVAL_SECONDS", "5")
    definitions = defs()
    assert definitions.get_sensor_def("automation").minimum_interval_seconds == 5
    policy = definitions.resolve_asset_graph().get(dg.AssetKey("trained_model")).freshness_policy
    assert (
        policy.warn_window.to_timedelta().total_seconds(),
        policy.fail_window.to_timedelta().total_seconds(),
    ) == (
        60,
        180,
    )
    assert definitions.get_schedule_def("retrain_schedule").cron_schedule == "*/5 * * * *"
    features_policy = definitions.resolve_asset_graph().get(dg.AssetKey("features")).freshness_policy
    assert features_policy.warn_window.to_timedelta().total_seconds() == 26 * 3600
