"""Serving the champion: daily batch predictions, and monitoring once the day's labels exist."""

import datetime as dt

import dagster as dg
from pydantic import Field

from ml_assets import checks, heap, kubernetes
from ml_assets.assets.deployment import champion_profile
from ml_assets.assets.metadata import OWNERS, DataFrame, describe_partitions, every_landed_day
from ml_assets.domain.contract import LABEL, PARTITION_COLUMN
from ml_assets.partitions import landing_days, single_run
from ml_assets.resources.mlflow import CHAMPION, MlflowTracking

KEYS = [PARTITION_COLUMN, "flight_date", "carrier", "flight", "origin", "sched_dep_time"]


@dg.asset(
    partitions_def=landing_days,
    backfill_policy=single_run,
    ins={"features": dg.AssetIn(dagster_type=DataFrame)},
    deps=["production_model"],
    group_name="serving",
    owners=OWNERS,
    kinds={"pandas", "mlflow"},
    code_version="1",
    op_tags=kubernetes.SERVING,
    dagster_type=DataFrame,
    description="Each day's flights scored by the champion (loaded by alias), model version on every row.",
)
def predictions(context: dg.AssetExecutionContext, features, mlflow: MlflowTracking):
    from ml_assets.domain.training import score

    # MLflow and skops first import here: see trained_model.
    with heap.collector_paused(), mlflow.reachable(context):
        version = mlflow.version_with_alias(CHAMPION)
        if version is None:
            raise dg.Failure(
                description="no model holds the 'champion' alias yet: materialize production_model"
            )
        model = mlflow.load_model(f"models:/{mlflow.registered_model_name}@{CHAMPION}")
    table = features[KEYS].copy()
    table["delay_probability"] = score(model, features) if len(features) else []
    table["model_version"] = version
    table["scored_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return dg.Output(
        table,
        metadata={
            **describe_partitions(context, table),
            "model_version": version,
            "mean_delay_probability": float(table["delay_probability"].mean()) if len(table) else 0.0,
        },
    )


class MonitoringConfig(dg.Config):
    window_days: int = Field(default=14, description="Judge the champion on the most recent N labelled days.")
    min_live_roc_auc: float = Field(default=0.65, description="Live ROC AUC under this is degradation.")
    max_live_brier: float = Field(default=0.22, description="Live Brier above this is degradation.")


@dg.asset(
    backfill_policy=single_run,
    ins={
        "predictions": every_landed_day(),
        "features": every_landed_day(),
    },
    group_name="serving",
    owners=OWNERS,
    kinds={"pandas"},
    code_version="1",
    op_tags=kubernetes.SERVING,
    check_specs=checks.MONITORING_CHECKS,
    description="The champion's live ROC AUC and calibration on recent labelled days; drift reported.",
)
def model_monitoring(
    context: dg.AssetExecutionContext,
    config: MonitoringConfig,
    predictions,
    features,
):
    from ml_assets.domain.monitoring import live_quality
    from ml_assets.domain.quality import population_stability

    days = sorted(predictions["flight_date"].unique())[-config.window_days :]
    recent = predictions[predictions["flight_date"].isin(days)]
    labelled = recent.merge(features[[*KEYS, LABEL]], on=KEYS, how="inner")
    quality = live_quality(labelled, LABEL, "delay_probability")
    reference = champion_profile(context.instance)
    recent_features = features[features["flight_date"].isin(days)]
    psi = population_stability(reference[0], recent_features) if reference else {}
    worst_psi = max(psi.values(), default=0.0)
    reasons = []
    if quality["roc_auc"] < config.min_live_roc_auc:
        reasons.append(f"live ROC AUC {quality['roc_auc']:.3f} < {config.min_live_roc_auc}")
    if quality["brier"] > config.max_live_brier:
        reasons.append(f"live Brier {quality['brier']:.3f} > {config.max_live_brier}")
    record = {
        "days": [days[0], days[-1]] if days else [],
        "labelled_rows": len(labelled),
        "model_versions": sorted(labelled["model_version"].unique().tolist()),
        **{f"live_{k}": v for k, v in quality.items()},
        "max_feature_psi": worst_psi,
        "degraded": bool(reasons),
        "reasons": reasons,
    }
    context.log.info(f"champion on {len(labelled):,} labelled rows: {quality}; degraded: {reasons or 'no'}")
    yield dg.Output(
        record,
        metadata={
            "labelled_rows": len(labelled),
            "live_roc_auc": quality["roc_auc"],
            "live_brier": quality["brier"],
            "max_feature_psi": worst_psi,
            "degraded": bool(reasons),
            "reasons": dg.MetadataValue.json(reasons),
            "drift_top_features": dg.MetadataValue.json(dict(sorted(psi.items(), key=lambda kv: -kv[1])[:5])),
        },
    )
    yield checks.champion_live_quality(record)
