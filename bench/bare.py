"""The floor: the same parse, validation, features and fit as the asset graph, as a plain script.

No Dagster, no IO manager, no checks, no metadata, no MLflow: files in, matrix and model out.
It calls the same pure functions the assets call, so the difference is the orchestration.
`register` is MLflow's own floor for the training step: the fitted model logged and registered
the cheapest way, no dataset, figures, profile or checks.
"""

from pathlib import Path

import pandas as pd

from ml_assets.domain.contract import LABEL, file_name_for_day, weather_file_for_day
from ml_assets.domain.features import build_features, read_reference_table, read_weather_files
from ml_assets.domain.parsing import parse_landing_file
from ml_assets.domain.training import SKOPS_TRUSTED_TYPES, ModelParams, evaluate, fit_model, score, time_split
from ml_assets.domain.validation import validate_flights


def parse(landing_dir: Path, days: list[str]) -> pd.DataFrame:
    frames = []
    for day in days:
        path = landing_dir / file_name_for_day(day)
        frames.append(parse_landing_file(path.read_bytes(), str(path), day).rows)
    return pd.concat(frames, ignore_index=True)


def ingest(landing_dir: Path, days: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse every day's file, keep the valid rows, build the feature table; returns (raw, features)."""
    raw = parse(landing_dir, days)
    valid = validate_flights(raw).valid
    weather_paths = [landing_dir / weather_file_for_day(day) for day in days]
    weather = read_weather_files([(str(p), p.read_bytes()) for p in weather_paths if p.is_file()])
    planes = read_reference_table("planes", (landing_dir / "planes.csv").read_bytes(), "planes.csv")
    return raw, build_features(valid, weather, planes)


def fit(features: pd.DataFrame, holdout_days: int, max_holdout_fraction: float, params: ModelParams):
    """Time split and the HistGradientBoosting fit on the training days."""
    return fit_model(time_split(features, holdout_days, max_holdout_fraction).train, params)


def holdout_scores(model, features: pd.DataFrame, holdout_days: int, max_holdout_fraction: float):
    holdout = time_split(features, holdout_days, max_holdout_fraction).holdout
    return score(model, holdout), holdout[LABEL].to_numpy()


def register(model, scores_and_labels, tracking_uri: str, artifacts: Path, requirements: list[str]) -> str:
    """Log the holdout metrics and the model, registered, in a run of a new MLflow store; its version."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("bare", artifact_location=artifacts.as_uri())
    with mlflow.start_run(experiment_id=experiment):
        mlflow.log_metrics(evaluate(scores_and_labels[1], scores_and_labels[0]))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name="bare_flight_delay",
            skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
            pip_requirements=requirements,
        )
    return str(info.registered_model_version)
