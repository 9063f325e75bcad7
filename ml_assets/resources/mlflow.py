"""MLflow tracking and registry, as a typed resource over dagster-mlflow's run handling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import dagster as dg
from pydantic import Field

CHAMPION = "champion"
CHALLENGER = "challenger"
# Artifacts every training run logs beside the model.
REFERENCE_PROFILE = "reference_profile.json"
HOLDOUT_SAMPLE = "holdout_sample.parquet"

# A step retries an unreachable tracking server this many times, waiting 5 s, 10 s, ...
TRACKING_RETRIES = 2


def is_unreachable(error: BaseException) -> bool:
    """True when an MLflow call failed because the tracking server could not be reached."""
    import requests

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
            return True
        text = str(seen)
        if "Max retries exceeded" in text or "Connection refused" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextlib.contextmanager
def _sqlite_init_lock(tracking_uri: str) -> Iterator[None]:
    """Serialize first use of an embedded sqlite store across processes: MLflow creates its tables
    on first connect, and parallel runs doing it at once fail with 'table ... already exists'."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    import fcntl
    from pathlib import Path

    lock_path = Path(tracking_uri.removeprefix("sqlite:///") + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class MlflowTracking(dg.ConfigurableResource):
    """Where models are tracked and registered.

    Wraps dagster-mlflow's `MlFlow` (the object behind its `mlflow_tracking` resource) so a
    Dagster run and its MLflow run share the `dagster_run_id` tag, but ends the MLflow run when
    the training step ends: the upstream hook may end it early, and its teardown only ends runs
    that raised.
    """

    tracking_uri: str = Field(description="MLflow tracking URI (sqlite:///..., http://host:port).")
    artifact_location: str | None = Field(
        default=None,
        description="Artifact root for a new experiment (local dir or s3://); None lets the server choose.",
    )
    experiment_name: str = Field(default="nyc-flight-delays", description="MLflow experiment.")
    registered_model_name: str = Field(
        default="flight_delay_classifier", description="Registered model that holds every version."
    )
    ui_url: str | None = Field(
        default=None, description="Base URL of the MLflow UI, used to link runs from Dagster."
    )
    dagster_ui_url: str | None = Field(
        default=None,
        description="Base URL of the Dagster UI, so an MLflow run links back to its Dagster run.",
    )
    http_request_max_retries: int = Field(
        default=2, description="MLflow client retries per HTTP request before the step sees the failure."
    )
    http_request_timeout_seconds: int = Field(default=20, description="MLflow client HTTP timeout.")

    @contextlib.contextmanager
    def reachable(self, context: dg.AssetExecutionContext) -> Iterator[None]:
        """Turn an unreachable tracking server into bounded step retries, then a clear failure."""
        try:
            yield
        except Exception as error:
            if not is_unreachable(error):
                raise
            if context.retry_number < TRACKING_RETRIES:
                wait = 5 * 2**context.retry_number
                context.log.warning(f"MLflow at {self.tracking_uri} unreachable; retrying in {wait} s")
                raise dg.RetryRequested(max_retries=TRACKING_RETRIES, seconds_to_wait=wait) from error
            raise dg.Failure(
                description=(
                    f"MLflow tracking server {self.tracking_uri} unreachable after "
                    f"{TRACKING_RETRIES + 1} attempts; the registry was not changed"
                ),
                metadata={"tracking_uri": self.tracking_uri, "error": str(error)[:500]},
            ) from error

    def _prepare(self):
        import os

        import mlflow

        # MLflow's own default is 7 retries with backoff (minutes); the step's retries are ours.
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(self.http_request_max_retries)
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(self.http_request_timeout_seconds)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        with _sqlite_init_lock(self.tracking_uri):
            client = mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            if client.get_experiment_by_name(self.experiment_name) is None:
                client.create_experiment(self.experiment_name, artifact_location=self.artifact_location)
        return mlflow

    def client(self):
        return self._prepare().MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    @contextlib.contextmanager
    def start_run(self, context: dg.AssetExecutionContext, tags: dict[str, str]) -> Iterator[Any]:
        """An active MLflow run tagged with the Dagster run; ended FINISHED or FAILED with the step."""
        mlflow = self._prepare()
        from dagster_mlflow.resources import MlFlow

        tracking = MlFlow(
            SimpleNamespace(
                log=context.log,
                dagster_run=SimpleNamespace(job_name=context.job_name),
                run_id=context.run.run_id,
                resource_config={
                    "experiment_name": self.experiment_name,
                    "mlflow_tracking_uri": self.tracking_uri,
                    "extra_tags": tags,
                },
            )
        )
        try:
            yield mlflow.active_run()
        except BaseException:
            tracking.end_run(status="FAILED")
            raise
        tracking.end_run(status="FINISHED")

    def log_files(self, run_id: str, files: dict[str, bytes]) -> None:
        """Write each file (name -> bytes) to the artifact root of the run, active or ended."""
        import tempfile
        from pathlib import Path

        client = self.client()
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            client.log_artifacts(run_id, tmp)

    def dagster_run_url(self, run_id: str) -> str | None:
        return f"{self.dagster_ui_url.rstrip('/')}/runs/{run_id}" if self.dagster_ui_url else None

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        if not self.ui_url:
            return None
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def version_with_alias(self, alias: str) -> str | None:
        """The registered version holding `alias`, or None."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client().get_registered_model(self.registered_model_name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        version = model.aliases.get(alias)
        return None if version is None else str(version)

    def version_uri(self, version: str) -> str:
        return f"models:/{self.registered_model_name}/{version}"

    def run_id_of(self, version: str) -> str:
        return self.client().get_model_version(self.registered_model_name, version).run_id

    def load_json_artifact(self, run_id: str, path: str) -> dict:
        import mlflow

        self._prepare()
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")

    def load_table_artifact(self, run_id: str, path: str):
        import tempfile

        import pandas as pd

        client = self.client()
        with tempfile.TemporaryDirectory() as tmp:
            return pd.read_parquet(client.download_artifacts(run_id, path, tmp))

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        """Set tags idempotently: a request the client retried may already have been applied, and a
        sqlite-backed server then answers the repeat with a UNIQUE-constraint error."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        for key, value in tags.items():
            try:
                client.set_model_version_tag(self.registered_model_name, version, key, value)
            except MlflowException as error:
                if "UNIQUE constraint" not in str(error):
                    raise
                current = client.get_model_version(self.registered_model_name, version).tags.get(key)
                if current != value:
                    client.set_model_version_tag(self.registered_model_name, version, key, value)

    def version_of_run(self, run_id: str) -> str | None:
        """The version registered from MLflow run `run_id`, or None."""
        found = self.client().search_model_versions(
            f"name='{self.registered_model_name}' and run_id='{run_id}'"
        )
        return str(max(int(v.version) for v in found)) if found else None

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.client().get_model_version(self.registered_model_name, version).tags)

    def versions_tagged(self, key: str, value: str) -> list[str]:
        found = self.client().search_model_versions(
            f"name='{self.registered_model_name}' and tags.{key}='{value}'"
        )
        return sorted((str(v.version) for v in found), key=int)

    def set_alias(self, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(self.registered_model_name, alias, version)

    def load_model(self, model_uri: str):
        return self._prepare().sklearn.load_model(model_uri)
