"""A record of every failed run on disk, and a webhook post when one is configured."""

import time

import dagster as dg

from ml_assets.resources.notifications import FailureNotifier


def failure_record(run: dg.DagsterRun, message: str, failed_steps: list[str]) -> dict:
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition"),
        "partition_range": [
            run.tags.get("dagster/asset_partition_range_start"),
            run.tags.get("dagster/asset_partition_range_end"),
        ],
        "landing_file": run.tags.get("ml_assets/landing_file"),
        "failed_steps": failed_steps,
        "message": message,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


@dg.run_failure_sensor(
    name="run_failure_records",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Writes a failure record for every failed run (and posts it to the webhook if configured).",
)
def run_failure_records(context: dg.RunFailureSensorContext, failures: FailureNotifier):
    steps = [event.step_key for event in context.get_step_failure_events() if event.step_key]
    record = failure_record(context.dagster_run, context.failure_event.message or "", steps)
    path = failures.notify(record, context.log)
    context.log.info(f"failure record written to {path}")
