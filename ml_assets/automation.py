"""Jobs by user intent, and the landing sensor that turns new files into partitions and runs."""

import json
from dataclasses import dataclass

import dagster as dg

from ml_assets.partitions import landing_days
from ml_assets.resources.landing import LandedFile, LocalLandingZone

INGEST_ASSETS = ["raw_data", "validated_data", "quarantine", "features"]

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.assets(*INGEST_ASSETS),
    description="Landing day(s) to validated data and features.",
)
retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.assets("trained_model", "production_model"),
    description="Train a challenger on all feature partitions and run the champion decision.",
)


@dataclass(frozen=True)
class LandingCursor:
    """High-water mark of files already seen: (modification time, name)."""

    modified_ns: int = 0
    name: str = ""

    @classmethod
    def parse(cls, raw: str | None) -> "LandingCursor":
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps({"modified_ns": self.modified_ns, "name": self.name})

    def is_new(self, landed: LandedFile) -> bool:
        return (landed.modified_ns, landed.name) > (self.modified_ns, self.name)


def new_files(files: list[LandedFile], cursor: LandingCursor) -> tuple[list[LandedFile], LandingCursor]:
    """Files past the cursor, oldest first, and the cursor that covers them."""
    fresh = sorted((f for f in files if cursor.is_new(f)), key=lambda f: (f.modified_ns, f.name))
    if not fresh:
        return [], cursor
    return fresh, LandingCursor(fresh[-1].modified_ns, fresh[-1].name)


def ingest_run_request(days: list[str]) -> dg.RunRequest:
    """One run for all the new days: a partition range, so a backlog costs one process start."""
    if len(days) == 1:
        return dg.RunRequest(partition_key=days[0])
    return dg.RunRequest(
        tags={
            "dagster/asset_partition_range_start": days[0],
            "dagster/asset_partition_range_end": days[-1],
        }
    )


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers a partition for each new complete landing file and asks for one ingest run.",
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LocalLandingZone):
    cursor = LandingCursor.parse(context.cursor)
    fresh, next_cursor = new_files(landing.list_files(), cursor)
    if not fresh:
        return dg.SkipReason("no new landing files")
    misnamed = [f.name for f in fresh if f.day is None]
    if misnamed:
        context.log.warning(f"ignored files whose name is not flights_YYYY-MM-DD.csv: {misnamed[:10]}")
    days = sorted(
        {
            f.day
            for f in fresh
            if f.day and not context.instance.has_dynamic_partition(landing_days.name, f.day)
        }
    )
    return dg.SensorResult(
        run_requests=[ingest_run_request(days)] if days else [],
        dynamic_partitions_requests=[landing_days.build_add_request(days)] if days else [],
        cursor=next_cursor.dump(),
    )
