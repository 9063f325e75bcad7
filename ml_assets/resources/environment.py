"""The one place that chooses resources and the executor for an environment.

`ML_ASSETS_ENV=local` (default): embedded stores under the working directory.
`ML_ASSETS_ENV=production`: S3 (any S3-compatible endpoint) for landing files and asset tables, an
MLflow tracking server, and the executor named by `ML_ASSETS_EXECUTOR` (Kubernetes pods per step).
Settings are read when Dagster loads the definitions, never at import; secrets only as `dg.EnvVar`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg

from ml_assets.resources.compute import Compute
from ml_assets.resources.io_manager import ParquetIOManager
from ml_assets.resources.landing import LocalLandingZone
from ml_assets.resources.mlflow import MlflowTracking
from ml_assets.resources.notifications import FailureNotifier

ENV_VAR = "ML_ASSETS_ENV"
ENVIRONMENTS = ("local", "production")
EXECUTOR_VAR = "ML_ASSETS_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess", "k8s")
IO_THREADS_VAR = "ML_ASSETS_IO_THREADS"
PARSE_PROCESSES_VAR = "ML_ASSETS_PARSE_PROCESSES"
COMPUTE_THREADS_VAR = "ML_ASSETS_COMPUTE_THREADS"
# Named by EnvVar only when set: otherwise boto3 finds credentials itself (instance or pod role).
AWS_SECRETS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def _choice(var: str, default: str, allowed: tuple[str, ...]) -> str:
    name = os.environ.get(var, default)
    if name not in allowed:
        raise ValueError(f"{var}={name!r}: expected one of {', '.join(allowed)}")
    return name


def environment_name() -> str:
    return _choice(ENV_VAR, "local", ENVIRONMENTS)


def _count(var: str, default: int, of: str) -> int:
    value = os.environ.get(var, str(default))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{var}={value!r}: expected a whole number of {of}, 1 or more")
    return int(value)


def io_threads() -> int:
    """`ML_ASSETS_IO_THREADS` (4): partitions the IO manager encodes, writes and reads at once, and
    landing files a range reads at once; a step pod given one CPU may want fewer."""
    return _count(IO_THREADS_VAR, 4, "threads")


def parse_processes(default: int) -> int:
    """`ML_ASSETS_PARSE_PROCESSES`: worker processes raw_data parses a range's landing files on."""
    return _count(PARSE_PROCESSES_VAR, default, "processes")


def compute_resource(default: int) -> Compute:
    """`ML_ASSETS_COMPUTE_THREADS`: threads a step computes a range on (`Compute`)."""
    return Compute(threads=_count(COMPUTE_THREADS_VAR, default, "threads"))


def usable_cores() -> int:
    """CPUs this process may run on (its affinity where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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


def _mlflow(tracking_uri: str, artifact_location: str | None, ui_url: str | None) -> MlflowTracking:
    return MlflowTracking(
        tracking_uri=tracking_uri,
        artifact_location=artifact_location,
        ui_url=os.environ.get("ML_ASSETS_MLFLOW_UI_URL", ui_url),
        experiment_name=os.environ.get("ML_ASSETS_MLFLOW_EXPERIMENT", "nyc-flight-delays"),
        registered_model_name=os.environ.get("ML_ASSETS_REGISTERED_MODEL", "flight_delay_classifier"),
        dagster_ui_url=os.environ.get("ML_ASSETS_DAGSTER_UI_URL", "http://127.0.0.1:3000"),
    )


def _failures(default_dir: str) -> FailureNotifier:
    return FailureNotifier(
        records_dir=os.environ.get("ML_ASSETS_FAILURES_DIR", default_dir),
        webhook_url=dg.EnvVar("ML_ASSETS_FAILURE_WEBHOOK_URL")
        if os.environ.get("ML_ASSETS_FAILURE_WEBHOOK_URL")
        else None,
    )


def local_resources() -> dict[str, Any]:
    paths = local_paths()
    server = is_server(paths["tracking_uri"])
    return {
        # Parsing workers: the machine's cores, capped at 4 (the step's own process still reads every
        # file and unpickles every worker's rows; measured on 2 cores only).
        "landing": LocalLandingZone(
            landing_dir=paths["landing_dir"],
            read_threads=io_threads(),
            parse_processes=parse_processes(min(4, usable_cores())),
        ),
        "io_manager": ParquetIOManager(base_dir=paths["storage_dir"], threads=io_threads()),
        # The machine's cores, as for parsing.
        "compute": compute_resource(min(4, usable_cores())),
        "failures": _failures(paths["failures_dir"]),
        # A tracking server stores artifacts where it was told to and is also the MLflow UI.
        "mlflow": _mlflow(
            paths["tracking_uri"],
            None if server else paths["artifact_location"],
            paths["tracking_uri"] if server else None,
        ),
    }


def s3_resource() -> Any:
    """dagster-aws's S3 resource; `ML_ASSETS_S3_ENDPOINT_URL` points it at any S3-compatible store."""
    from dagster_aws.s3 import S3Resource

    secrets = {name.lower(): dg.EnvVar(name) for name in AWS_SECRETS if os.environ.get(name)}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return S3Resource(
        endpoint_url=os.environ.get("ML_ASSETS_S3_ENDPOINT_URL") or None,
        region_name=region,
        **secrets,
    )


def production_resources() -> dict[str, Any]:
    from ml_assets.resources.s3 import S3LandingZone, S3ParquetIOManager

    s3 = s3_resource()
    landing_bucket = dg.EnvVar("ML_ASSETS_LANDING_BUCKET")
    return {
        # One unless set: a step pod's CPU request (kubernetes.INGEST) is not visible from inside it.
        "landing": S3LandingZone(
            s3=s3,
            bucket=landing_bucket,
            prefix=os.environ.get("ML_ASSETS_LANDING_PREFIX", "landing"),
            read_threads=io_threads(),
            parse_processes=parse_processes(1),
        ),
        "io_manager": S3ParquetIOManager(
            s3=s3,
            bucket=dg.EnvVar("ML_ASSETS_WAREHOUSE_BUCKET")
            if os.environ.get("ML_ASSETS_WAREHOUSE_BUCKET")
            else landing_bucket,
            prefix=os.environ.get("ML_ASSETS_WAREHOUSE_PREFIX", "warehouse"),
            threads=io_threads(),
        ),
        # One unless set, as for parsing: the features pod asks for one CPU (kubernetes.FEATURES).
        "compute": compute_resource(1),
        "failures": _failures("/tmp/ml_assets/failures"),
        # The tracking server decides where artifacts go (`--artifacts-destination s3://...`);
        # ML_ASSETS_MLFLOW_ARTIFACTS names an s3:// root for a server that does not proxy them.
        "mlflow": _mlflow(
            dg.EnvVar("MLFLOW_TRACKING_URI"),
            os.environ.get("ML_ASSETS_MLFLOW_ARTIFACTS") or None,
            os.environ.get("MLFLOW_TRACKING_URI"),
        ),
    }


def resources_for(environment: str) -> dict[str, Any]:
    """Resources keyed as the assets ask for them. Built when Dagster loads the code location."""
    if environment == "local":
        return local_resources()
    if environment == "production":
        return production_resources()
    raise ValueError(f"no resources for environment {environment!r}")


def executor_for(environment: str) -> dg.ExecutorDefinition:
    """In-process by default: a step process re-imports the code location (~2 s a step).
    Deployments that want isolation pick `multiprocess`, or `k8s` for a pod per step."""
    name = _choice(EXECUTOR_VAR, "in_process", EXECUTORS)
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if name == "multiprocess":
        return dg.multiprocess_executor
    return dg.in_process_executor
