"""Retrain when monitoring finds the champion degraded."""

import dagster as dg

from ml_assets.automation.jobs import retrain_job


@dg.asset_sensor(
    asset_key=dg.AssetKey("model_monitoring"),
    job=retrain_job,
    name="retrain_on_degradation",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches the retrain job when model_monitoring records a degraded champion.",
)
def retrain_on_degradation(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    materialization = asset_event.asset_materialization
    degraded = materialization.metadata.get("degraded") if materialization else None
    if degraded is None or not degraded.value:
        return dg.SkipReason("the champion is not degraded")
    reasons = materialization.metadata["reasons"].value
    context.log.info(f"champion degraded ({'; '.join(reasons)}): retraining")
    return dg.RunRequest(
        run_key=f"degraded:{asset_event.run_id}",
        tags={"ml_assets/retrain_reason": "; ".join(reasons)[:200]},
    )
