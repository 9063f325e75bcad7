"""The champion: promote the challenger only when it beats the champion on the same holdout."""

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from ml_assets import checks
from ml_assets.domain.contract import LABEL
from ml_assets.domain.promotion import decide_promotion
from ml_assets.domain.training import evaluate, score
from ml_assets.partitions import single_run
from ml_assets.resources.io_manager import ALLOW_MISSING_PARTITIONS
from ml_assets.resources.mlflow import CHAMPION, HOLDOUT_SAMPLE, MlflowTracking


class PromotionConfig(dg.Config):
    promotion_margin: float = Field(
        default=0.002, description="ROC AUC the challenger must gain over the champion to replace it."
    )


def holdout_of(features: pd.DataFrame, trained_model: dict) -> pd.DataFrame:
    days = features["flight_date"]
    return features[
        (days >= trained_model["holdout_first_day"]) & (days <= trained_model["holdout_last_day"])
    ]


@dg.asset(
    backfill_policy=single_run,
    ins={"features": dg.AssetIn(metadata={ALLOW_MISSING_PARTITIONS: True})},
    group_name="deployment",
    kinds={"mlflow"},
    check_specs=checks.PRODUCTION_MODEL_CHECKS,
    code_version="1",
    description="The model version holding the MLflow alias 'champion', after the promotion decision.",
)
def production_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    trained_model: dict,
    features: pd.DataFrame,
    mlflow: MlflowTracking,
):
    holdout = holdout_of(features, trained_model)
    labels = holdout[LABEL].to_numpy()
    challenger_version = trained_model["version"]
    challenger_auc = evaluate(labels, score(mlflow.load_model(trained_model["model_uri"]), holdout))
    challenger_auc = challenger_auc["roc_auc"]
    current = mlflow.version_with_alias(CHAMPION)
    champion_auc = None
    if current is not None and current != challenger_version:
        champion_model = mlflow.load_model(mlflow.version_uri(current))
        champion_auc = evaluate(labels, score(champion_model, holdout))["roc_auc"]
    decision = decide_promotion(
        challenger_auc,
        champion_auc,
        config.promotion_margin,
        trained_model["passed_quality_gate"],
        already_champion=current == challenger_version,
    )
    if decision.promote:
        mlflow.set_alias(CHAMPION, challenger_version)
    champion_version = challenger_version if decision.promote else current
    client = mlflow.client()
    for key, value in {
        "promotion_decision": "promoted" if decision.promote else "kept_champion",
        "promotion_reason": decision.reason,
        "promotion_challenger_auc": f"{challenger_auc:.5f}",
        "promotion_champion_auc": "" if champion_auc is None else f"{champion_auc:.5f}",
        "promotion_dagster_run_id": context.run.run_id,
    }.items():
        client.set_model_version_tag(mlflow.registered_model_name, challenger_version, key, value)
    context.log.info(f"promotion: {decision.reason}; champion is version {champion_version}")
    record = {
        "champion_version": champion_version,
        "champion_uri": f"models:/{mlflow.registered_model_name}@{CHAMPION}" if champion_version else None,
        "challenger_version": challenger_version,
        "promoted": decision.promote,
        "reason": decision.reason,
        "challenger_auc": challenger_auc,
        "champion_auc": champion_auc,
    }
    yield dg.Output(
        record,
        metadata={
            "champion_version": str(champion_version),
            "champion_uri": str(record["champion_uri"]),
            "challenger_version": challenger_version,
            "promoted": decision.promote,
            "decision": decision.reason,
            "challenger_holdout_roc_auc": challenger_auc,
            "champion_holdout_roc_auc": champion_auc if champion_auc is not None else float("nan"),
            "holdout_rows": len(holdout),
        },
    )
    yield _champion_reproduces(mlflow, champion_version)


def _champion_reproduces(mlflow: MlflowTracking, version: str | None) -> dg.AssetCheckResult:
    """Load the champion by alias and re-score the holdout sample its training run logged."""
    if version is None:
        return checks.champion_reproduces(None, 0, None)
    sample = mlflow.load_table_artifact(mlflow.run_id_of(version), HOLDOUT_SAMPLE)
    model = mlflow.load_model(f"models:/{mlflow.registered_model_name}@{CHAMPION}")
    rescored = model.predict_proba(sample.drop(columns="prediction"))[:, 1]
    difference = float(np.max(np.abs(rescored - sample["prediction"].to_numpy()))) if len(sample) else 0.0
    return checks.champion_reproduces(difference, len(sample), version)
