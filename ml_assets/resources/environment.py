"""The one place that chooses resources for an environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ml_assets.resources.io_manager import ParquetIOManager
from ml_assets.resources.landing import LocalLandingZone
from ml_assets.resources.mlflow import MlflowTracking
from ml_assets.resources.notifications import FailureNotifier

ENV_VAR = "ML_ASSETS_ENV"
ENVIRONMENTS = ("local",)


def environment_name() -> str:
    name = os.environ.get(ENV_VAR, "local")
    if name not in ENVIRONMENTS:
        raise ValueError(f"{ENV_VAR}={name!r}: expected one of {', '.join(ENVIRONMENTS)}")
    return name


def local_paths(root: Path | None = None) -> dict[str, str]:
    """Embedded defaults under the working directory, each overridable by its environment variable."""
    root = root or Path.cwd()
    mlflow_dir = root / ".mlflow"
    return {
        "landing_dir": os.environ.get("ML_ASSETS_LANDING_DIR", str(root / "data" / "landing")),
        "storage_dir": os.environ.get("ML_ASSETS_STORAGE_DIR", str(root / "data" / "warehouse")),
        "tracking_uri": os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_dir / 'mlflow.db'}"),
        "artifact_location": os.environ.get("ML_ASSETS_MLFLOW_ARTIFACTS", str(mlflow_dir / "artifacts")),
        "failures_dir": os.environ.get("ML_ASSETS_FAILURES_DIR", str(root / "data" / "failures")),
    }


def is_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def resources_for(environment: str) -> dict[str, Any]:
    """Resources keyed as the assets ask for them. Read when Dagster loads the code location."""
    if environment == "local":
        paths = local_paths()
        return {
            "landing": LocalLandingZone(landing_dir=paths["landing_dir"]),
            "io_manager": ParquetIOManager(base_dir=paths["storage_dir"]),
            "failures": FailureNotifier(
                records_dir=paths["failures_dir"],
                webhook_url=os.environ.get("ML_ASSETS_FAILURE_WEBHOOK_URL"),
            ),
            "mlflow": MlflowTracking(
                tracking_uri=paths["tracking_uri"],
                # A tracking server stores artifacts where it was told to; only a local store needs a root.
                artifact_location=None if is_server(paths["tracking_uri"]) else paths["artifact_location"],
                # A tracking server is also the MLflow UI; an embedded store has none unless named.
                ui_url=os.environ.get(
                    "ML_ASSETS_MLFLOW_UI_URL",
                    paths["tracking_uri"] if is_server(paths["tracking_uri"]) else None,
                ),
                experiment_name=os.environ.get("ML_ASSETS_MLFLOW_EXPERIMENT", "nyc-flight-delays"),
                registered_model_name=os.environ.get("ML_ASSETS_REGISTERED_MODEL", "flight_delay_classifier"),
                dagster_ui_url=os.environ.get("ML_ASSETS_DAGSTER_UI_URL", "http://127.0.0.1:3000"),
            ),
        }
    raise ValueError(f"no resources for environment {environment!r}")
