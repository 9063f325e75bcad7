"""Resources and executor chosen per environment, from environment variables read at load time."""

import dagster as dg
import pytest

from ml_assets.resources.environment import executor_for, resources_for, usable_cores
from ml_assets.resources.io_manager import ParquetIOManager
from ml_assets.resources.landing import LocalLandingZone


def test_local_is_embedded(monkeypatch, tmp_path):
    monkeypatch.setenv("ML_ASSETS_LANDING_DIR", str(tmp_path / "in"))
    resources = resources_for("local")
    assert isinstance(resources["landing"], LocalLandingZone)
    assert resources["landing"].landing_dir == str(tmp_path / "in")
    assert isinstance(resources["io_manager"], ParquetIOManager)
    assert resources["io_manager"].threads == 4
    assert resources["landing"].parse_processes == min(4, usable_cores())
    assert resources["landing"].read_threads == 4
    assert resources["compute"].threads == min(4, usable_cores())
    monkeypatch.setenv("ML_ASSETS_PARSE_PROCESSES", "3")
    assert resources_for("local")["landing"].parse_processes == 3
    monkeypatch.setenv("ML_ASSETS_COMPUTE_THREADS", "3")
    assert resources_for("local")["compute"].threads == 3
    assert executor_for("local") is dg.in_process_executor


def test_production_uses_s3_with_secrets_only_as_env_vars(monkeypatch):
    from ml_assets.resources.s3 import S3LandingZone, S3ParquetIOManager

    monkeypatch.setenv("ML_ASSETS_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ML_ASSETS_LANDING_BUCKET", "in-bucket")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("ML_ASSETS_EXECUTOR", "multiprocess")
    monkeypatch.setenv("ML_ASSETS_IO_THREADS", "1")
    resources = resources_for("production")
    landing, tables = resources["landing"], resources["io_manager"]
    assert isinstance(landing, S3LandingZone)
    assert isinstance(tables, S3ParquetIOManager)
    assert landing.s3.endpoint_url == "http://127.0.0.1:9"
    # Secrets and buckets are EnvVar references, resolved by Dagster when a run starts.
    assert landing.s3.aws_secret_access_key == dg.EnvVar("AWS_SECRET_ACCESS_KEY")
    assert landing.bucket == dg.EnvVar("ML_ASSETS_LANDING_BUCKET")
    assert tables.bucket == dg.EnvVar("ML_ASSETS_LANDING_BUCKET")  # one bucket unless told otherwise
    assert tables.prefix == "warehouse"
    assert tables.threads == 1
    assert landing.parse_processes == 1  # a pod's CPU request is not visible from inside it
    assert landing.read_threads == 1  # ML_ASSETS_IO_THREADS, as for the tables
    assert resources["compute"].threads == 1  # as for parsing
    assert resources["mlflow"].tracking_uri == dg.EnvVar("MLFLOW_TRACKING_URI")
    assert resources["mlflow"].ui_url == "http://mlflow.internal:5000"
    assert "very-secret" not in repr(resources)
    assert executor_for("production") is dg.multiprocess_executor


def test_unknown_names_are_refused_with_the_variable(monkeypatch):
    from ml_assets.resources.environment import environment_name

    monkeypatch.setenv("ML_ASSETS_ENV", "staging")
    with pytest.raises(ValueError, match="ML_ASSETS_ENV='staging'"):
        environment_name()
    monkeypatch.setenv("ML_ASSETS_EXECUTOR", "celery")
    with pytest.raises(ValueError, match="ML_ASSETS_EXECUTOR='celery'"):
        executor_for("production")
    for variable in ("ML_ASSETS_IO_THREADS", "ML_ASSETS_PARSE_PROCESSES", "ML_ASSETS_COMPUTE_THREADS"):
        for value in ("0", "four", "-2"):
            monkeypatch.setenv(variable, value)
            with pytest.raises(ValueError, match=f"{variable}='{value}'"):
                resources_for("local")
        monkeypatch.delenv(variable)
