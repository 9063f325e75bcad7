"""Landing files into typed tables: raw_data per day; weather (per day) and planes as external assets."""

import dagster as dg

from ml_assets import checks, kubernetes
from ml_assets.assets.metadata import (
    OWNERS,
    DataFrame,
    column_types,
    declared_schema,
    describe_partitions,
    recorded_column_types,
    recorded_partition_facts,
)
from ml_assets.domain.contract import FILE_ERROR, file_name_for_day
from ml_assets.domain.tables import RAW_TYPES
from ml_assets.partitions import landing_days, single_run
from ml_assets.resources.landing import LandingZone

# Days a worker parses per task: large enough that a task's pickled rows cost little next to its
# parsing, small enough that a few months' range still spreads over the workers.
PARSE_BATCH_DAYS = 16


@dg.asset(
    partitions_def=landing_days,
    backfill_policy=single_run,
    group_name="ingestion",
    owners=OWNERS,
    kinds={"pandas", "parquet"},
    code_version="1",
    op_tags=kubernetes.INGEST,
    check_specs=checks.RAW_DATA_CHECKS,
    dagster_type=DataFrame,
    metadata=declared_schema(RAW_TYPES),
    description="Each landing day's flights file as landed, typed, with per-row source file and row number.",
)
def raw_data(context: dg.AssetExecutionContext, landing: LandingZone):
    import pandas as pd

    from ml_assets.domain.parsing import LandingFileError, parse_landed, refuse_unreadable, rejection_rows
    from ml_assets.domain.quality import row_count_anomalies
    from ml_assets.pools import fork_refusal, map_processes, map_threads_ahead, worker_processes

    def read_landed(day: str) -> tuple[str, str, bytes | LandingFileError]:
        source = landing.location(file_name_for_day(day))
        try:
            refuse_unreadable(source, landing.size_of_day(day), landing.max_file_bytes)
        except LandingFileError as error:
            return source, day, error
        return source, day, landing.read_day(day)

    days = list(context.partition_keys)
    # Read here, a batch's files at once (an S3 request waits ~the network's round trip), and parsed
    # on the landing zone's worker processes as they are read (parsing holds the GIL): a range's
    # files in batches of PARSE_BATCH_DAYS, in day order; a single batch (a new day) in this process.
    workers = worker_processes(landing.parse_processes, len(days), PARSE_BATCH_DAYS)
    if not workers and landing.parse_processes > 1 and len(days) > PARSE_BATCH_DAYS:
        context.log.info(f"parsing in the step's process: {fork_refusal()}")
    landed = map_threads_ahead(read_landed, days, landing.read_threads, PARSE_BATCH_DAYS)
    outcomes = map_processes(parse_landed, landed, workers, PARSE_BATCH_DAYS)
    frames, files, rejected = [], [], []
    for n, (day, parsed) in enumerate(zip(days, outcomes, strict=True), start=1):
        if isinstance(parsed, LandingFileError):
            context.log.error(str(parsed))
            refusal = {"day": day, "file": parsed.source, "rule": parsed.rule.value, "detail": parsed.detail}
            rejected.append(refusal)
            frames.append(rejection_rows(parsed, day))
            continue
        frames.append(parsed.rows)
        landed = {
            "day": day,
            "file": parsed.source,
            "rows": len(parsed.rows),
            "bytes": parsed.size_bytes,
            "sha256": parsed.sha256,
            "extra_columns": list(parsed.extra_columns),
        }
        files.append(landed)
        if n % 50 == 0 or n == len(days):
            context.log.info(f"read {n}/{len(days)} landing files")
    rows = pd.concat(frames, ignore_index=True)
    del frames  # the generator lives until its checks are yielded: do not hold the year twice
    rows_by_day = {f["day"]: f["rows"] for f in files}
    previous_columns = recorded_column_types(context, "raw_data")
    yield dg.Output(
        rows,
        metadata={
            **describe_partitions(
                context, rows, counted=rows[FILE_ERROR].isna(), per_day={f["day"]: _source(f) for f in files}
            ),
            "days": len(days),
            "files_read": len(files),
            "files_rejected": len(rejected),
            "bytes_read": sum(f["bytes"] for f in files),
            "parse_workers": workers,
        },
    )
    history = _rows_by_day_before(context, min(days))
    yield checks.raw_files_parse(rejected, len(days))
    yield checks.raw_required_columns(rejected, len(days))
    yield checks.raw_row_count_band(row_count_anomalies(rows_by_day, history), len(rows_by_day), len(history))
    yield checks.raw_duplicate_files(files)
    yield checks.column_schema_unchanged(checks.RAW_DATA, previous_columns, column_types(rows))


def _source(landed: dict) -> dict:
    """What a day's own materialization says of its file (the sensor's re-land check reads sha256)."""
    extra = {"extra_columns": ", ".join(landed["extra_columns"])} if landed["extra_columns"] else {}
    return {"source_path": landed["file"], "sha256": landed["sha256"], "bytes": landed["bytes"], **extra}


def _rows_by_day_before(context: dg.AssetExecutionContext, day: str, window: int = 14) -> dict[str, int]:
    """Row counts of the `window` landing days before `day`, as raw_data last recorded them."""
    earlier = sorted(k for k in context.instance.get_dynamic_partitions(landing_days.name) if k < day)
    recorded = recorded_partition_facts(context.instance, "raw_data", earlier[-window:])
    counts = {d: f.get("dagster/row_count") for d, f in recorded.items()}
    return {d: int(n) for d, n in counts.items() if n is not None}


# Reference tables are kept up to date outside this pipeline: external assets give them lineage in
# the graph without making them steps, so a backfill of the daily chain never waits on them.
# Weather is partitioned like the flights: a day's file landing after its flights is reported by the
# weather sensor, and features re-runs that day alone.
weather = dg.AssetSpec(
    "weather",
    group_name="ingestion",
    owners=OWNERS,
    kinds={"csv"},
    partitions_def=landing_days,
    description="Hourly weather per origin airport: weather_YYYY-MM-DD.csv per day, landing dir (external).",
)
planes = dg.AssetSpec(
    "planes",
    group_name="ingestion",
    owners=OWNERS,
    kinds={"csv"},
    description="Aircraft by tail number (year, seats, engines): planes.csv in the landing dir (external).",
)
