"""The landing sensors: new flight files become partitions, each with one ingest run; a day's weather
landing after its features ran is recorded, and automation re-runs that day's features."""

import hashlib

import dagster as dg

from ml_assets.assets.metadata import WEATHER_SHA256, recorded_partition_facts
from ml_assets.automation.jobs import ingest_job
from ml_assets.automation.policies import LANDING_FILE_TAG
from ml_assets.domain.contract import FileRule
from ml_assets.partitions import landing_days
from ml_assets.resources.landing import WEATHER_FILE_PREFIX, LandedFile, LandingZone


def ingest_run_request(landed: LandedFile) -> dg.RunRequest:
    """One run per landing file, so a bad day fails its own run and never blocks another day's."""
    return dg.RunRequest(
        partition_key=landed.day,
        run_key=f"{landed.name}:{landed.modified_ns}",
        tags={LANDING_FILE_TAG: landed.name},
    )


def misnamed_file_event(
    landed: LandedFile, location: str, asset_key: str = "raw_data", pattern: str = "flights_YYYY-MM-DD.csv"
) -> dg.AssetObservation:
    """A file whose name is no landing day: recorded on the asset it would feed, left untouched."""
    return dg.AssetObservation(
        asset_key=asset_key,
        metadata={
            "rejected_file": location,
            "rule": FileRule.BAD_FILE_NAME.value,
            "detail": f"file name is not {pattern}; the file was not read",
        },
    )


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers a partition per new complete landing file and asks for one ingest run per file.",
)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
    fresh, next_cursor = landing.new_files(context.cursor)
    if not fresh:
        return dg.SkipReason("no new landing files")
    misnamed = [f for f in fresh if f.day is None]
    for landed in misnamed:
        context.log.warning(f"{landing.location(landed.name)}: rule 'bad_file_name': not read")
    named = [f for f in fresh if f.day is not None]
    new_days = sorted(
        {f.day for f in named if not context.instance.has_dynamic_partition(landing_days.name, f.day)}
    )
    # On the first tick, days registered before the sensor ran (`make dev` registers the demo) are
    # left to the user; after it, a file past the cursor for a known day is a re-land: it runs again
    # when its bytes changed, and is recorded and skipped when they did not.
    first_tick = not context.cursor
    relanded = [f for f in named if f.day not in new_days and not first_tick]
    identical = [
        f for f in relanded if landing.sha256_of_day(f.day) == last_landed_sha256(context.instance, f.day)
    ]
    to_run = [f for f in named if f.day in new_days or (f in relanded and f not in identical)]
    for landed in identical:
        context.log.info(f"{landing.location(landed.name)}: landed again with identical bytes; skipped")
    return dg.SensorResult(
        run_requests=[ingest_run_request(f) for f in to_run],
        dynamic_partitions_requests=[landing_days.build_add_request(new_days)] if new_days else [],
        asset_events=[
            *(misnamed_file_event(f, landing.location(f.name)) for f in misnamed),
            *(identical_reland_event(f, landing.location(f.name)) for f in identical),
        ],
        cursor=next_cursor,
    )


def last_landed_sha256(instance: dg.DagsterInstance, day: str) -> str | None:
    """The content hash raw_data last recorded for a day's file (one read per re-land; three if a range run
    landed the day and it was not that run's last day, whose own event holds the run's table)."""
    return recorded_partition_facts(instance, "raw_data", [day]).get(day, {}).get("sha256")


def identical_reland_event(landed: LandedFile, location: str) -> dg.AssetObservation:
    return dg.AssetObservation(
        asset_key="raw_data",
        partition=landed.day,
        metadata={"skipped_file": location, "reason": "landed again with the same bytes as last processed"},
    )


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records weather files landing after their day's features ran; that day's features re-run.",
)
def weather_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
    fresh, next_cursor = landing.new_files(context.cursor, WEATHER_FILE_PREFIX)
    if not fresh:
        return dg.SkipReason("no new weather files")
    misnamed = [f for f in fresh if f.day is None]
    for landed in misnamed:
        context.log.warning(f"{landing.location(landed.name)}: rule 'bad_file_name': not read")
    # The first tick only sets the cursor (weather landed before the sensor ran is left to the user, as
    # with flights). After it, a weather file matters only if its day's features ran before it landed:
    # otherwise the day's coming or running features step reads it anyway.
    late = [] if not context.cursor else late_weather(context.instance, [f for f in fresh if f.day])
    # A late file holding the bytes its day's features read (or that a tick already recorded) would
    # re-run the day's features for the same result: cost must follow new data.
    to_record: list[tuple[LandedFile, str]] = []
    for landed in late:
        sha = weather_sha256(landing, landed.day)
        if sha is None:
            context.log.warning(f"{landing.location(landed.name)}: gone before it was read; not recorded")
        elif sha in recorded_weather_sha256s(context.instance, landed.day):
            context.log.info(f"{landing.location(landed.name)}: landed again with identical bytes; skipped")
        else:
            context.log.info(f"{landing.location(landed.name)}: landed after its day's features; recorded")
            to_record.append((landed, sha))
    return dg.SensorResult(
        asset_events=[
            *(
                misnamed_file_event(f, landing.location(f.name), "weather", "weather_YYYY-MM-DD.csv")
                for f in misnamed
            ),
            *(weather_landed_event(f, landing.location(f.name), sha) for f, sha in to_record),
        ],
        cursor=next_cursor,
    )


def late_weather(instance: dg.DagsterInstance, landed: list[LandedFile]) -> list[LandedFile]:
    """The weather files whose day's features were last written before the file landed."""
    late = []
    for weather in landed:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("features"), asset_partitions=[weather.day]), limit=1
        ).records
        if records and records[0].timestamp * 1e9 < weather.modified_ns:
            late.append(weather)
    return late


def weather_sha256(landing: LandingZone, day: str) -> str | None:
    data = landing.read_weather(day)
    return None if data is None else hashlib.sha256(data).hexdigest()


def recorded_weather_sha256s(instance: dg.DagsterInstance, day: str) -> set[str]:
    """The content hashes of the day's weather as its features last read it and as this sensor last
    recorded it (a late file recorded, its features not yet re-run)."""
    facts = recorded_partition_facts(instance, "features", [day]).get(day, {})
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("weather"), asset_partitions=[day]), limit=1
    ).records
    recorded = records[0].asset_materialization.metadata.get("sha256") if records else None
    return {sha for sha in (facts.get(WEATHER_SHA256), recorded and recorded.value) if sha}


def weather_landed_event(landed: LandedFile, location: str, sha256: str) -> dg.AssetMaterialization:
    """A runless materialization of the day's weather: features follows it (an update made by no
    landing run), so the day's features re-run with the weather joined."""
    return dg.AssetMaterialization(
        asset_key="weather",
        partition=landed.day,
        metadata={"file": location, "size_bytes": landed.size_bytes, "sha256": sha256},
    )
