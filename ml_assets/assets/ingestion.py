"""Landing files into typed tables: raw_data per day, plus the weather and planes reference tables."""

import dagster as dg
import pandas as pd

from ml_assets import checks
from ml_assets.assets.metadata import row_count
from ml_assets.domain.contract import FILE_ERROR, file_name_for_day
from ml_assets.domain.parsing import (
    LandingFileError,
    parse_landing_file,
    refuse_unreadable,
    rejection_rows,
)
from ml_assets.partitions import landing_days, single_run
from ml_assets.resources.landing import LocalLandingZone


@dg.asset(
    partitions_def=landing_days,
    backfill_policy=single_run,
    group_name="ingestion",
    kinds={"pandas", "parquet"},
    code_version="1",
    check_specs=checks.RAW_DATA_CHECKS,
    description="Each landing day's flights file as landed, typed, with per-row source file and row number.",
)
def raw_data(context: dg.AssetExecutionContext, landing: LocalLandingZone):
    days = list(context.partition_keys)
    frames, files, rejected = [], [], []
    for n, day in enumerate(days, start=1):
        source = landing.location(file_name_for_day(day))
        try:
            refuse_unreadable(source, landing.size_of_day(day), landing.max_file_bytes)
            parsed = parse_landing_file(landing.read_day(day), source, day)
        except LandingFileError as error:
            context.log.error(str(error))
            rejected.append({"day": day, "file": source, "rule": error.rule.value, "detail": error.detail})
            frames.append(rejection_rows(error, day))
            continue
        frames.append(parsed.rows)
        files.append(
            {
                "day": day,
                "file": source,
                "rows": len(parsed.rows),
                "bytes": parsed.size_bytes,
                "sha256": parsed.sha256,
                "extra_columns": list(parsed.extra_columns),
            }
        )
        if n % 50 == 0 or n == len(days):
            context.log.info(f"read {n}/{len(days)} landing files")
    rows = pd.concat(frames, ignore_index=True)
    flight_rows = int(rows[FILE_ERROR].isna().sum())
    metadata = {
        **row_count(context, flight_rows),
        "days": len(days),
        "files_read": len(files),
        "files_rejected": len(rejected),
        "bytes_read": sum(f["bytes"] for f in files),
    }
    if len(files) == 1:
        metadata.update(
            {"source_path": files[0]["file"], "sha256": files[0]["sha256"], "bytes": files[0]["bytes"]}
        )
    metadata["files"] = dg.MetadataValue.json(files[:400])
    yield dg.Output(rows, metadata=metadata)
    yield checks.raw_files_parse(rejected, len(days))


# Reference tables are kept up to date outside this pipeline: external assets give them lineage in
# the graph without making them steps, so a backfill of the daily chain never waits on them.
weather = dg.AssetSpec(
    "weather",
    group_name="ingestion",
    kinds={"csv"},
    description="Hourly weather per origin airport: weather.csv in the landing dir (external).",
)
planes = dg.AssetSpec(
    "planes",
    group_name="ingestion",
    kinds={"csv"},
    description="Aircraft by tail number (year, seats, engines): planes.csv in the landing dir (external).",
)
