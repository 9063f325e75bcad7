"""The code location: the one Definitions, with resources and automation for the environment."""

import dagster as dg

from ml_assets import heap

# Before our modules load, so the collections their imports trigger skip Dagster's objects (heap.py).
heap.exempt_dagster_modules()

from ml_assets.assets.deployment import production_model
from ml_assets.assets.features import features
from ml_assets.assets.ingestion import planes, raw_data, weather
from ml_assets.assets.serving import model_monitoring, predictions
from ml_assets.assets.training import feature_importance, trained_model
from ml_assets.assets.validation import validated_data
from ml_assets.automation.degradation import retrain_on_degradation
from ml_assets.automation.failures import run_failure_records
from ml_assets.automation.jobs import ingest_job, promote_job, retrain_job, rollback_job
from ml_assets.automation.landing_sensor import landing_sensor, weather_sensor
from ml_assets.automation.policies import (
    AutomationSettings,
    apply_automation,
    automation_sensor,
    retrain_schedule,
)
from ml_assets.checks import builder_checks
from ml_assets.resources.environment import environment_name, executor_for, resources_for


@dg.definitions
def defs() -> dg.Definitions:
    settings = AutomationSettings.from_env()
    environment = environment_name()
    definitions = dg.Definitions(
        assets=[
            raw_data,
            weather,
            planes,
            validated_data,
            features,
            trained_model,
            feature_importance,
            production_model,
            predictions,
            model_monitoring,
        ],
        asset_checks=builder_checks(),
        jobs=[ingest_job, retrain_job, promote_job, rollback_job],
        schedules=[retrain_schedule(settings, retrain_job)],
        sensors=[
            landing_sensor,
            weather_sensor,
            automation_sensor(settings),
            run_failure_records,
            retrain_on_degradation,
        ],
        resources=resources_for(environment),
        executor=executor_for(environment),
    )
    definitions = apply_automation(definitions, settings)
    # Everything loaded so far lives as long as the process: out of the collector's scans (see heap.py).
    heap.freeze_loaded_objects()
    return definitions
