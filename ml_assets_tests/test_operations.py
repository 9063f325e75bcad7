"""`make materialize` end to end: real dagster CLI, a temporary DAGSTER_HOME, a few real days."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.demo import seed
from ml_assets.operations import land_weather_by_day, main, materialize_command, register_landed_days
from ml_assets.resources.landing import LocalLandingZone
from ml_assets_tests.integration.servers import REPO, dev_env


def test_register_adds_only_new_complete_days(tmp_path):
    seed(tmp_path, "2013-03-01", 2)
    (tmp_path / "flights_2013-03-03.csv.tmp").write_text("partial")
    landing = LocalLandingZone(landing_dir=str(tmp_path))
    with dg.instance_for_test() as instance:
        assert register_landed_days(instance, landing) == ["2013-03-01", "2013-03-02"]
        assert register_landed_days(instance, landing) == []
    assert materialize_command(["a", "b"])[-2:] == ["--partition-range", "a...b"]


def test_split_weather_lands_each_day_once_and_a_bad_file_lands_nothing(tmp_path, capsys):
    from ml_assets.demo import demo_data_dir
    from ml_assets.domain.features import read_weather_files

    shipped = (demo_data_dir() / "weather.csv").read_text().splitlines(keepends=True)
    march = [line for line in shipped[1:] if ",2013,3," in line]
    source = tmp_path / "weather_march.csv"
    source.write_text(shipped[0] + "".join(march))
    landing = tmp_path / "landing"
    main(["split-weather", str(source), "--to", str(landing)])
    assert "landed 31 weather days; 0 already landed" in capsys.readouterr().out
    assert sorted(p.name for p in landing.iterdir()) == [f"weather_2013-03-{d:02d}.csv" for d in range(1, 32)]
    zone = LocalLandingZone(landing_dir=str(landing))
    assert len(read_weather_files([("d", zone.read_weather("2013-03-15"))])) == 72
    assert sum(
        len(read_weather_files([("d", zone.read_weather(f"2013-03-{d:02d}"))])) for d in range(1, 32)
    ) == len(march)

    # Landing the same file again moves nothing (the weather sensor would re-run every day's
    # features); a corrected day is landed again, alone.
    mtimes = {p.name: p.stat().st_mtime_ns for p in landing.iterdir()}
    corrected = source.read_text().replace("EWR,2013,3,15,1,", "EWR,2013,3,15,1,1", 1)
    source.write_text(corrected)
    assert land_weather_by_day(source, landing)["landed"] == ["2013-03-15"]
    assert land_weather_by_day(source, landing) == {
        "landed": [],
        "unchanged": [f"2013-03-{d:02d}" for d in range(1, 32)],
    }
    moved = [p.name for p in landing.iterdir() if p.stat().st_mtime_ns != mtimes[p.name]]
    assert moved == ["weather_2013-03-15.csv"]

    # A bad row anywhere fails the command naming the file, row and rule, and lands no day.
    bad = tmp_path / "bad.csv"
    bad.write_text(shipped[0] + march[0] + march[1].replace(",2013,3,1,", ",2013,3,32,", 1))
    empty = tmp_path / "empty"
    with pytest.raises(
        SystemExit, match=rf"^{re.escape(str(bad))}: row 3: year, month, day must form a date"
    ):
        main(["split-weather", str(bad), "--to", str(empty)])
    assert not empty.exists()


def test_make_materialize_runs_the_whole_graph_in_one_run(tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    seed(landing, "2013-06-01", 12)
    env = {
        **os.environ,
        **dev_env(),  # as `make materialize` runs it
        "DAGSTER_HOME": str(tmp_path / "home"),
        "ML_ASSETS_LANDING_DIR": str(landing),
        "ML_ASSETS_STORAGE_DIR": str(tmp_path / "warehouse"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "ML_ASSETS_MLFLOW_ARTIFACTS": str(tmp_path / "artifacts"),
    }
    (tmp_path / "home").mkdir()
    shutil.copy(REPO / "dagster.yaml", tmp_path / "home" / "dagster.yaml")
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
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])  # the instance's event log lives there
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert type(instance.event_log_storage).__name__ == "BatchingSqliteEventLogStorage"
        # The one run's plan and each range output went in as batches: every day of every asset.
        assert len(instance.get_materialized_partitions(dg.AssetKey("features"))) == 12
    assert len(runs) == 1
    assert runs[0].status == dg.DagsterRunStatus.SUCCESS
