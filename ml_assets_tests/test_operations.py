"""`make materialize` end to end: real dagster CLI, a temporary DAGSTER_HOME, a few real days."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from ml_assets.demo import seed
from ml_assets.operations import materialize_command, register_landed_days
from ml_assets.resources.landing import LocalLandingZone


def test_register_adds_only_new_complete_days(tmp_path):
    seed(tmp_path, "2013-03-01", 2)
    (tmp_path / "flights_2013-03-03.csv.tmp").write_text("partial")
    landing = LocalLandingZone(landing_dir=str(tmp_path))
    with dg.instance_for_test() as instance:
        assert register_landed_days(instance, landing) == ["2013-03-01", "2013-03-02"]
        assert register_landed_days(instance, landing) == []
    assert materialize_command(["a", "b"])[-2:] == ["--partition-range", "a...b"]


def test_make_materialize_runs_the_whole_graph_in_one_run(tmp_path):
    landing = tmp_path / "landing"
    seed(landing, "2013-06-01", 12)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "ML_ASSETS_LANDING_DIR": str(landing),
        "ML_ASSETS_STORAGE_DIR": str(tmp_path / "warehouse"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "ML_ASSETS_MLFLOW_ARTIFACTS": str(tmp_path / "artifacts"),
    }
    (tmp_path / "home").mkdir()
    config = {"ops": {"trained_model": {"config": {"holdout_days": 4, "max_iter": 100}}}}
    result = subprocess.run(
        [sys.executable, "-m", "ml_assets.operations", "materialize", "--config-json", json.dumps(config)],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "registered 12 new landing days" in result.stdout
    record = json.loads((tmp_path / "warehouse" / "production_model.json").read_text())
    assert record["champion_version"] == "1"
    trained = json.loads((tmp_path / "warehouse" / "trained_model.json").read_text())
    assert (trained["holdout_first_day"], trained["holdout_last_day"]) == ("2013-06-10", "2013-06-12")
    assert len(list((tmp_path / "warehouse" / "features").glob("*.parquet"))) == 12
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        runs = instance.get_runs()
    assert len(runs) == 1
    assert runs[0].status == dg.DagsterRunStatus.SUCCESS
