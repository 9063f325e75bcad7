"""One job per user intent."""

import dagster as dg

INGEST_ASSETS = ["raw_data", "validated_data", "quarantine", "features"]

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.assets(*INGEST_ASSETS),
    description="Landing day(s) to validated data and features.",
)
retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.assets("trained_model", "production_model", "feature_importance"),
    description="Train a challenger on the feature partitions, run the champion decision, explain it.",
    tags={"ml_assets/training": "true"},
)
promote_job = dg.define_asset_job(
    "promote",
    selection=dg.AssetSelection.assets("production_model"),
    description="Re-run the champion decision for the latest challenger.",
)
rollback_job = dg.define_asset_job(
    "rollback",
    selection=dg.AssetSelection.assets("production_model"),
    description="Move the 'champion' alias back to the version that held it before the current one.",
    config={"ops": {"production_model": {"config": {"rollback": True}}}},
)
