"""The champion: promote the challenger only when it beats the champion on the same holdout,
or roll the champion back to the one before it."""

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from ml_assets import checks, heap, kubernetes
from ml_assets.assets.metadata import OWNERS, every_landed_day
from ml_assets.domain.contract import LABEL
from ml_assets.domain.promotion import (
    DECISION_RUN_TAG,
    DECISION_TAG,
    decide_promotion,
    previous_champion,
    promoted_by_this_run,
)
from ml_assets.partitions import single_run
from ml_assets.resources.mlflow import CHAMPION, HOLDOUT_SAMPLE, REFERENCE_PROFILE, MlflowTracking

if TYPE_CHECKING:
    import pandas as pd

PROMOTED, KEPT, ROLLED_BACK = "promoted", "kept_champion", "rolled_back"
ROLLED_BACK_BY_TAG = "rolled_back_by_dagster_run_id"
# Written with the decision on the version; read back when a retried run finds the alias already moved.
REASON_TAG, CHAMPION_AUC_TAG = "promotion_reason", "promotion_champion_auc"


class PromotionConfig(dg.Config):
    promotion_margin: float = Field(
        default=0.002, description="ROC AUC the challenger must gain over the champion to replace it."
    )
    rollback: bool = Field(
        default=False,
        description="Instead of deciding, move 'champion' back to the version that held it before.",
    )


@dg.asset(
    backfill_policy=single_run,
    ins={"features": every_landed_day()},
    group_name="deployment",
    owners=OWNERS,
    kinds={"mlflow"},
    check_specs=checks.PRODUCTION_MODEL_CHECKS,
    code_version="1",
    op_tags=kubernetes.LIGHT,
    description="The model version holding the MLflow alias 'champion', after the promotion decision.",
)
def production_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    trained_model: dict,
    features,
    mlflow: MlflowTracking,
):
    # MLflow and skops first import here: see trained_model.
    with heap.collector_paused(), mlflow.reachable(context):
        if config.rollback:
            record = _roll_back(context, mlflow)
        else:
            from ml_assets.domain.training import holdout_of

            record = _decide(context, config, trained_model, holdout_of(features, trained_model), mlflow)
        reproduces = _champion_reproduces(mlflow, record["champion_version"])
    context.log.info(
        f"{record['action']}: {record['reason']}; champion is version {record['champion_version']}"
    )
    yield dg.Output(
        record,
        metadata={
            "champion_version": str(record["champion_version"]),
            "champion_uri": str(record["champion_uri"]),
            "challenger_version": str(record["challenger_version"]),
            "action": record["action"],
            "promoted": record["action"] == PROMOTED,
            "decision": record["reason"],
            "challenger_holdout_roc_auc": _number(record["challenger_auc"]),
            "champion_holdout_roc_auc": _number(record["champion_auc"]),
            **(
                {"reference_profile": dg.MetadataValue.json(record["reference_profile"])}
                if record["reference_profile"]
                else {}
            ),
        },
    )
    yield reproduces


def _number(value: float | None) -> float:
    return float("nan") if value is None else value


def _decide(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    trained_model: dict,
    holdout: "pd.DataFrame",
    mlflow: MlflowTracking,
) -> dict:
    """Score challenger and champion on the same holdout rows; move the alias only on a clear win."""
    from ml_assets.domain.training import evaluate, score

    labels = holdout[LABEL].to_numpy()
    challenger = trained_model["version"]
    challenger_auc = evaluate(labels, score(mlflow.load_model(trained_model["model_uri"]), holdout))[
        "roc_auc"
    ]
    current = mlflow.version_with_alias(CHAMPION)
    if current == challenger:
        return _already_champion(context, mlflow, challenger, challenger_auc, len(holdout))
    champion_auc = None
    if current is not None:
        champion_auc = evaluate(labels, score(mlflow.load_model(mlflow.version_uri(current)), holdout))[
            "roc_auc"
        ]
    decision = decide_promotion(
        challenger_auc, champion_auc, config.promotion_margin, trained_model["passed_quality_gate"]
    )
    if decision.promote:
        mlflow.set_alias(CHAMPION, challenger)
    action = PROMOTED if decision.promote else KEPT
    _tag_decision(
        context,
        mlflow,
        challenger,
        action,
        decision.reason,
        challenger_auc=challenger_auc,
        champion_auc=champion_auc,
        holdout_rows=len(holdout),
    )
    champion = challenger if decision.promote else current
    return _record(
        mlflow,
        champion,
        challenger,
        action,
        decision.reason,
        challenger_auc=challenger_auc,
        champion_auc=champion_auc,
    )


def _already_champion(
    context: dg.AssetExecutionContext,
    mlflow: MlflowTracking,
    challenger: str,
    challenger_auc: float,
    holdout_rows: int,
) -> dict:
    """The challenger holds 'champion' already: finish this run's own earlier attempt, or report
    it kept without touching the tags of the run that promoted it (rollback searches for them)."""
    tags = mlflow.version_tags(challenger)
    if promoted_by_this_run(tags, context.run.run_id):
        # A retry after the alias moved, e.g. the tracking server dropped out while the decision was
        # being recorded: judging again would compare the challenger with itself and call it 'kept'.
        action = PROMOTED
        reason = tags.get(REASON_TAG) or "promoted by an earlier attempt of this run"
        recorded_auc = tags.get(CHAMPION_AUC_TAG)
        champion_auc = float(recorded_auc) if recorded_auc else None
        _tag_decision(
            context,
            mlflow,
            challenger,
            action,
            reason,
            challenger_auc=challenger_auc,
            champion_auc=champion_auc,
            holdout_rows=holdout_rows,
        )
    else:
        action, champion_auc = KEPT, challenger_auc
        reason = (
            f"challenger already holds the champion alias (promoted by Dagster run {tags[DECISION_RUN_TAG]})"
        )
    return _record(
        mlflow,
        challenger,
        challenger,
        action,
        reason,
        challenger_auc=challenger_auc,
        champion_auc=champion_auc,
    )


def _tag_decision(
    context, mlflow, version, action, reason, *, challenger_auc, champion_auc, holdout_rows
) -> None:
    """Record on the model version why it was or was not promoted, and by which Dagster run."""
    mlflow.tag_version(
        version,
        {
            DECISION_TAG: action,
            REASON_TAG: reason,
            "promotion_challenger_auc": f"{challenger_auc:.5f}",
            CHAMPION_AUC_TAG: "" if champion_auc is None else f"{champion_auc:.5f}",
            "promotion_holdout_rows": str(holdout_rows),
            DECISION_RUN_TAG: context.run.run_id,
        },
    )


def _roll_back(context: dg.AssetExecutionContext, mlflow: MlflowTracking) -> dict:
    """Give 'champion' back to the version promoted before the current one, and record who did it."""
    run_id = context.run.run_id
    # The version left is tagged before the alias moves: a retry of this run (the server dropped out
    # mid-way) finds where it started and finishes that rollback instead of going back one more.
    started = mlflow.versions_tagged(ROLLED_BACK_BY_TAG, run_id)
    current = started[0] if started else mlflow.version_with_alias(CHAMPION)
    promoted = mlflow.versions_tagged(DECISION_TAG, PROMOTED)
    target = previous_champion(promoted, current)
    if target is None:
        raise dg.Failure(
            description=f"no earlier champion to roll back to (champion: {current}, promoted: {promoted})"
        )
    if not started:
        mlflow.tag_version(current, {ROLLED_BACK_BY_TAG: run_id})
    mlflow.set_alias(CHAMPION, target)
    reason = f"rolled back from version {current} to version {target}"
    mlflow.tag_version(target, {DECISION_TAG: PROMOTED, "restored_from": str(current), "restored_by": run_id})
    return _record(mlflow, target, current, ROLLED_BACK, reason, challenger_auc=None, champion_auc=None)


def _record(mlflow, champion, challenger, action, reason, *, challenger_auc, champion_auc) -> dict:
    # The champion's training profile is recorded with the decision: the features drift check
    # reads it from here instead of asking the registry (and importing MLflow) on every ingest run.
    profile = mlflow.load_json_artifact(mlflow.run_id_of(champion), REFERENCE_PROFILE) if champion else None
    return {
        "champion_version": champion,
        "champion_uri": f"models:/{mlflow.registered_model_name}@{CHAMPION}" if champion else None,
        "champion_version_uri": mlflow.version_uri(champion) if champion else None,
        "challenger_version": challenger,
        "action": action,
        "promoted": action == PROMOTED,
        "reason": reason,
        "challenger_auc": challenger_auc,
        "champion_auc": champion_auc,
        "reference_profile": profile,
    }


def _champion_reproduces(mlflow: MlflowTracking, version: str | None) -> dg.AssetCheckResult:
    """Load the champion by alias and re-score the holdout sample its training run logged."""
    import numpy as np

    if version is None:
        return checks.champion_reproduces(None, 0, None)
    sample = mlflow.load_table_artifact(mlflow.run_id_of(version), HOLDOUT_SAMPLE)
    model = mlflow.load_model(f"models:/{mlflow.registered_model_name}@{CHAMPION}")
    rescored = model.predict_proba(sample.drop(columns="prediction"))[:, 1]
    difference = float(np.max(np.abs(rescored - sample["prediction"].to_numpy()))) if len(sample) else 0.0
    return checks.champion_reproduces(difference, len(sample), version)


def champion_profile(instance: dg.DagsterInstance) -> tuple[dict, str] | None:
    """(training profile, version) the current champion was recorded with, or None before one.

    Read from production_model's latest materialization, the record of the champion decision:
    asking the MLflow registry instead cost an import of MLflow (about 1 s) in every ingest run."""
    records = instance.fetch_materializations(checks.PRODUCTION_MODEL, limit=1).records
    metadata = records[0].asset_materialization.metadata if records else {}
    if "reference_profile" not in metadata or "champion_version" not in metadata:
        return None
    return metadata["reference_profile"].value, str(metadata["champion_version"].value)
