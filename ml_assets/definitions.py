"""The code location: the one Definitions, with resources for the environment."""

import dagster as dg

from ml_assets.assets.deployment import production_model
from ml_assets.assets.features import features
from ml_assets.assets.ingestion import planes, raw_data, weather
from ml_assets.assets.training import trained_model
from ml_assets.assets.validation import validated_data
from ml_assets.automation import ingest_job, landing_sensor, retrain_job
from ml_assets.checks import builder_checks
from ml_assets.resources.environment import environment_name, resources_for


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[raw_data, weather, planes, validated_data, features, trained_model, production_model],
        asset_checks=builder_checks(),
        jobs=[ingest_job, retrain_job],
        sensors=[landing_sensor],
        resources=resources_for(environment_name()),
        # One process per run: a step process re-imports the code location (~2 s each).
        executor=dg.in_process_executor,
    )
