"""Train a challenger on the feature partitions, register it in MLflow, and explain it."""

import dataclasses
import json
import time
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from ml_assets import checks, heap, kubernetes
from ml_assets.assets.metadata import OWNERS, every_landed_day, png_markdown
from ml_assets.domain.contract import LABEL
from ml_assets.partitions import single_run
from ml_assets.resources.mlflow import (
    CHALLENGER,
    CHAMPION,
    HOLDOUT_SAMPLE,
    REFERENCE_PROFILE,
    MlflowTracking,
)

if TYPE_CHECKING:
    import pandas as pd

    from ml_assets.domain.training import ModelParams, Split

HOLDOUT_SAMPLE_ROWS = 200
TRAIN_METRIC_ROWS = 50_000


class TrainingConfig(dg.Config):
    window_days: int = Field(default=0, description="Train on the most recent N flight dates (0 = all).")
    holdout_days: int = Field(default=60, description="Last N flight dates held out for evaluation.")
    max_holdout_fraction: float = Field(
        default=0.25,
        description="Hold out at most this share of the days, so a short history still trains.",
    )
    learning_rate: float = Field(default=0.06, description="Gradient boosting learning rate.")
    max_iter: int = Field(
        default=400, description="Maximum boosting iterations (early stopping may end sooner)."
    )
    max_leaf_nodes: int = Field(default=31, description="Maximum leaves per tree.")
    min_samples_leaf: int = Field(default=40, description="Minimum rows per leaf.")
    l2_regularization: float = Field(default=1.0, description="L2 penalty on leaf values.")
    seed: int = Field(default=42, description="Random seed for the model's internal validation split.")
    min_holdout_roc_auc: float = Field(
        default=0.65, description="Quality gate: a model under this holdout ROC AUC cannot be champion."
    )

    def model_params(self) -> "ModelParams":
        from ml_assets.domain.training import ModelParams

        return ModelParams.from_settings(self.model_dump())


@dg.asset(
    backfill_policy=single_run,
    ins={"features": every_landed_day()},
    group_name="training",
    owners=OWNERS,
    kinds={"sklearn", "mlflow"},
    code_version="1",
    op_tags=kubernetes.TRAINING,
    check_specs=checks.TRAINED_MODEL_CHECKS,
    description="HistGradientBoosting challenger trained with a time split, logged and registered in MLflow.",
)
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    features,
    mlflow: MlflowTracking,
):
    from ml_assets.domain.plots import calibration_png, roc_curve_png
    from ml_assets.domain.quality import slice_auc
    from ml_assets.domain.training import evaluate, fit_inputs, model_inputs, score, select_window, time_split

    window = select_window(features, config.window_days)
    split = time_split(window, config.holdout_days, config.max_holdout_fraction)
    params = config.model_params()
    context.log.info(
        f"training on {len(split.train):,} rows {split.train_days}, "
        f"holding out {len(split.holdout):,} rows {split.holdout_days}"
    )
    started = time.perf_counter()
    # Built once: the model is fitted on these and MLflow logs them as the training dataset.
    train_inputs = model_inputs(split.train)
    model = fit_inputs(train_inputs, split.train[LABEL].to_numpy(), params)
    fit_seconds = time.perf_counter() - started
    context.log.info(f"fitted {int(model[-1].n_iter_)} boosting iterations in {fit_seconds:.1f} s")
    labels = split.holdout[LABEL].to_numpy()
    origins = split.holdout["origin"].to_numpy()
    holdout_proba = score(model, split.holdout)
    # Train metrics only show over-fitting: a seeded sample is as good as all 280k rows, at 1/5 the cost.
    train_sample = split.train.sample(n=min(TRAIN_METRIC_ROWS, len(split.train)), random_state=config.seed)
    train_metrics = evaluate(train_sample[LABEL], score(model, train_sample))
    holdout_metrics = evaluate(labels, holdout_proba)
    passed_gate = holdout_metrics["roc_auc"] >= config.min_holdout_roc_auc
    # Matplotlib, MLflow and skops first import here: with the collector on, their imports set off
    # five full collections, each rescanning every library the step imported before them (pandas,
    # Arrow, scikit-learn, SciPy; 0.56-0.73 s in all) to find at most a few thousand garbage objects.
    with heap.collector_paused():
        figures = {
            "roc_curve.png": roc_curve_png(labels, holdout_proba, holdout_metrics["roc_auc"]),
            "calibration_curve.png": calibration_png(labels, holdout_proba, holdout_metrics["brier"]),
        }
        with mlflow.reachable(context):
            champion = _champion_on_holdout(mlflow, split.holdout)
            version, run_id, experiment_id = _log_training_run(
                context,
                mlflow,
                model=model,
                split=split,
                train_inputs=train_inputs,
                params={**dataclasses.asdict(params), "window_days": config.window_days},
                metrics={
                    **{f"train_{k}": v for k, v in train_metrics.items()},
                    **{f"holdout_{k}": v for k, v in holdout_metrics.items()},
                    "boosting_iterations": int(model[-1].n_iter_),
                },
                holdout_proba=holdout_proba,
                figures=figures,
            )

    record = {
        "model_uri": mlflow.version_uri(version),
        "registered_model_name": mlflow.registered_model_name,
        "version": version,
        "mlflow_run_id": run_id,
        "holdout_first_day": split.holdout_days[0],
        "holdout_last_day": split.holdout_days[1],
        "train_rows": len(split.train),
        "holdout_rows": len(split.holdout),
        "holdout_metrics": holdout_metrics,
        "passed_quality_gate": passed_gate,
    }
    url = mlflow.run_url(experiment_id, run_id)
    yield dg.Output(
        record,
        metadata={
            "model_uri": record["model_uri"],
            "model_version": version,
            "mlflow_run_id": run_id,
            **({"mlflow_run_url": dg.MetadataValue.url(url)} if url else {}),
            "train_rows": len(split.train),
            "holdout_rows": len(split.holdout),
            **{f"holdout_{k}": v for k, v in holdout_metrics.items()},
            "train_roc_auc": train_metrics["roc_auc"],
            "boosting_iterations": int(model[-1].n_iter_),
            "fit_seconds": round(fit_seconds, 3),
            **{f"plot_{name[:-4]}": png_markdown(png) for name, png in figures.items()},
        },
    )
    yield checks.holdout_auc_floor(holdout_metrics["roc_auc"], config.min_holdout_roc_auc)
    yield checks.calibration_vs_champion(holdout_metrics["brier"], champion and champion["brier"])
    yield checks.origin_slices_vs_champion(
        slice_auc(labels, holdout_proba, origins), champion and champion["slice_auc"]
    )


def _log_training_run(
    context: dg.AssetExecutionContext,
    mlflow: MlflowTracking,
    *,
    model,
    split: "Split",
    train_inputs: "pd.DataFrame",
    params: dict,
    metrics: dict,
    holdout_proba,
    figures: dict[str, bytes],
) -> tuple[str, str, str]:
    """One MLflow run: provenance tags, params, metrics, the training data as a dataset input, report
    figures, the reference profile and holdout sample, and the model registered as the challenger."""
    import mlflow as mlflow_lib
    import pandas as pd
    from mlflow.models import infer_signature

    from ml_assets.domain.quality import feature_profile
    from ml_assets.domain.training import (
        SKOPS_TRUSTED_TYPES,
        model_inputs,
        model_requirements,
        score,
        table_digest,
    )

    # The distinct days, not a Python string per row (0.18 s for a year).
    landing_days = sorted({*split.train["landing_day"].unique(), *split.holdout["landing_day"].unique()})
    tags = {
        "dagster_asset": context.asset_key.to_user_string(),
        "dagster_code_version": context.assets_def.code_versions_by_key[context.asset_key] or "",
        "dagster_partition_range": f"{landing_days[0]}..{landing_days[-1]}",
        "dagster_partitions": str(len(landing_days)),
        "git_commit": git_commit(),
        "train_days": f"{split.train_days[0]}..{split.train_days[1]}",
        "holdout_days": f"{split.holdout_days[0]}..{split.holdout_days[1]}",
    }
    back_link = mlflow.dagster_run_url(context.run.run_id)
    if back_link:
        tags["dagster_run_url"] = back_link
    with mlflow.start_run(context, tags) as run:
        mlflow_lib.log_params(params)
        mlflow_lib.log_metrics(metrics)
        # The fitted inputs and their labels side by side, sharing the inputs' memory (no copy).
        labelled = pd.concat(
            [train_inputs, pd.Series(split.train[LABEL].to_numpy(), index=train_inputs.index, name="label")],
            axis=1,
            copy=False,
        )
        dataset = mlflow_lib.data.from_pandas(
            labelled, name="flight_features_train", targets="label", digest=table_digest(labelled)
        )
        # MLflow infers a dataset schema element by element (2.4 s for a year); the same schema,
        # computed column-wise, is filled into its cached property.
        dataset.__dict__["schema"] = dataset_schema(labelled)
        mlflow_lib.log_input(dataset, context="training")
        mlflow_lib.set_tag("training_dataset_digest", dataset.digest)
        mlflow_lib.log_dict(feature_profile(split.train), REFERENCE_PROFILE)
        mlflow.log_files(
            run.info.run_id, {**figures, HOLDOUT_SAMPLE: _holdout_sample(split.holdout, holdout_proba)}
        )
        # A retry resumes this MLflow run (dagster-mlflow finds it by the Dagster run id); when an
        # earlier attempt registered the model before failing, registering again would orphan a version.
        version = mlflow.version_of_run(run.info.run_id) if context.retry_number else None
        if version is None:
            example = model_inputs(split.holdout.head(5))
            info = mlflow_lib.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(example, score(model, split.holdout.head(5))),
                input_example=example,
                registered_model_name=mlflow.registered_model_name,
                skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
                # Named, not inferred: MLflow's inference runs a subprocess importing the model (~2 s).
                pip_requirements=model_requirements(),
            )
            version = str(info.registered_model_version)
        mlflow.set_alias(CHALLENGER, version)
        context.log.info(f"logged MLflow run {run.info.run_id}; registered version {version} as challenger")
        return version, run.info.run_id, run.info.experiment_id


def dataset_schema(frame: "pd.DataFrame"):
    """MLflow's schema of a table (strings, doubles, longs; optional where a value is missing)."""
    import pandas as pd
    from mlflow.types import ColSpec, DataType, Schema

    def kind(series: pd.Series) -> DataType:
        if pd.api.types.is_bool_dtype(series):
            return DataType.boolean
        if pd.api.types.is_integer_dtype(series):
            return DataType.integer if series.dtype.itemsize <= 4 else DataType.long
        if pd.api.types.is_float_dtype(series):
            return DataType.double
        return DataType.string

    return Schema(
        [ColSpec(kind(frame[c]), str(c), required=not bool(frame[c].isna().any())) for c in frame.columns]
    )


def git_commit() -> str:
    """The commit of the code that trained the model (env ML_ASSETS_GIT_COMMIT in images without .git)."""
    import os
    import subprocess

    if os.environ.get("ML_ASSETS_GIT_COMMIT"):
        return os.environ["ML_ASSETS_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def _champion_on_holdout(mlflow: MlflowTracking, holdout: "pd.DataFrame") -> dict | None:
    """The current champion's Brier and per-origin ROC AUC on this holdout, or None without one."""
    from ml_assets.domain.quality import slice_auc
    from ml_assets.domain.training import evaluate, score

    version = mlflow.version_with_alias(CHAMPION)
    if version is None:
        return None
    probabilities = score(mlflow.load_model(mlflow.version_uri(version)), holdout)
    labels = holdout[LABEL].to_numpy()
    return {
        "version": version,
        "brier": evaluate(labels, probabilities)["brier"],
        "slice_auc": slice_auc(labels, probabilities, holdout["origin"].to_numpy()),
    }


def _holdout_sample(holdout: "pd.DataFrame", probabilities, rows: int = HOLDOUT_SAMPLE_ROWS) -> bytes:
    """The first holdout rows with their predictions, as Parquet: the champion check re-scores them."""
    import io

    from ml_assets.domain.training import model_inputs

    buffer = io.BytesIO()
    model_inputs(holdout.head(rows)).assign(prediction=probabilities[:rows]).to_parquet(buffer, index=False)
    return buffer.getvalue()


class ImportanceConfig(dg.Config):
    rows: int = Field(default=4000, description="Holdout rows sampled (seeded) to shuffle.")
    repeats: int = Field(default=3, description="Shuffles per input column; its importance is their mean.")
    seed: int = Field(default=42, description="Random seed for the sample and the shuffles.")


@dg.asset(
    backfill_policy=single_run,
    ins={"features": every_landed_day()},
    group_name="training",
    owners=OWNERS,
    kinds={"sklearn", "mlflow"},
    code_version="1",
    op_tags=kubernetes.SERVING,
    description="Permutation importance of each model input on the challenger's holdout, in its MLflow run.",
)
def feature_importance(
    context: dg.AssetExecutionContext,
    config: ImportanceConfig,
    trained_model: dict,
    features,
    mlflow: MlflowTracking,
):
    # A step of its own, off the path to the champion decision: 109 scorings of the holdout sample
    # took a fifth of the training step and decide nothing.
    from ml_assets.domain.plots import importances_png
    from ml_assets.domain.training import holdout_of, permutation_importances, top_importances

    holdout = holdout_of(features, trained_model)
    # MLflow, skops and matplotlib first import here: see trained_model.
    with heap.collector_paused(), mlflow.reachable(context):
        model = mlflow.load_model(trained_model["model_uri"])
        importances = permutation_importances(model, holdout, config.seed, config.rows, config.repeats)
        png = importances_png(importances)
        mlflow.log_files(
            trained_model["mlflow_run_id"],
            {
                "feature_importance.json": json.dumps(importances, indent=1).encode(),
                "feature_importance.png": png,
            },
        )
    context.log.info(f"importances of version {trained_model['version']} logged to its MLflow run")
    return dg.Output(
        {
            "version": trained_model["version"],
            "mlflow_run_id": trained_model["mlflow_run_id"],
            "importances": importances,
        },
        metadata={
            "model_version": trained_model["version"],
            "mlflow_run_id": trained_model["mlflow_run_id"],
            "sample_rows": min(config.rows, len(holdout)),
            "repeats": config.repeats,
            "top_features": dg.MetadataValue.json(top_importances(importances)),
            "plot_feature_importance": png_markdown(png),
        },
    )
