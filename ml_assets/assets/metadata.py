"""What the assets share: owners, the table type, and materialization metadata.

Nothing here imports pandas at module load: the code location loads without it (about 0.2 s of
0.6 s), and the steps that handle tables import it when they run.
"""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import dagster as dg

from ml_assets.domain.contract import PARTITION_COLUMN
from ml_assets.resources.io_manager import ALLOW_MISSING_PARTITIONS

if TYPE_CHECKING:
    import pandas as pd

# Metadata key of a table's columns and dtypes, on every partition's event.
COLUMN_TYPES = "column_types"

# Who answers for every asset of this code location, shown in the UI and in alerts.
OWNERS = ["team:ml-platform"]


def _is_data_frame(_context, value: object) -> bool:
    return any(
        cls.__name__ == "DataFrame" and cls.__module__.startswith("pandas.") for cls in type(value).__mro__
    )


# A pandas DataFrame as a Dagster type: checked on every table input and output, and named in the
# UI, without importing pandas when the definitions load.
DataFrame = dg.DagsterType(
    name="DataFrame", type_check_fn=_is_data_frame, description="A pandas DataFrame (one table)."
)


# On every event of a range run that recorded per-day facts: the day whose event holds the facts of
# the run's last RECENT_FACT_DAYS days (its last day)...
PER_DAY_FACTS_ON = "per_day_facts_on"
# ...and, where the run was longer, the day whose event holds the facts of the days before (its first).
EARLIER_PER_DAY_FACTS_ON = "earlier_per_day_facts_on"
# On a holder's event: one row per day it holds, with the keys a one-day run puts on its event.
PER_DAY_FACTS = "per_day_facts"
# Twice the row-count band's window (the 14 days before a new one), so that a one-day run after a
# backfill reads a table of this many rows, not the backfill's every day (5,840 rows, 1.5 MB of
# event to deserialize at 16 years: 0.06-0.19 s a run, where the recent table takes ~5 ms).
RECENT_FACT_DAYS = 28
# A day's fact on features: the sha256 of the weather file its features read.
WEATHER_SHA256 = "weather_sha256"


def describe_partitions(
    context: dg.AssetExecutionContext,
    frame: "pd.DataFrame",
    asset_key: str | None = None,
    counted: "pd.Series | None" = None,
    per_day: dict[str, dict] | None = None,
) -> dict:
    """Metadata of a partitioned table: returns what every partition of the run gets, and writes
    what only the run's last day gets there.

    Every day: the run's totals and its `column_types` (compact JSON, what the schema check
    compares). A one-day run returns its day's own facts with them (`dagster/row_count` of the rows
    marked by `counted`, all by default; `per_day`'s entry, the landing file's facts that the sensor
    and the row-count check read back; the preview). A range run makes one
    `add_asset_metadata(partition_key=...)` call, on its last day: the preview, and where `per_day`
    is given (`raw_data`'s landing files, `features`' weather files; derived tables' counts by day
    are in the `rows_reconcile` check) the `per_day_facts` table of the run's last
    `RECENT_FACT_DAYS` days; a longer run puts the table of the days before on its first day, a
    second call. Every day's event names both holders (`per_day_facts_on`,
    `earlier_per_day_facts_on`), and `recorded_partition_facts` reads the facts back. Not a call per
    day: each makes Dagster re-read every dynamic partition key to validate the day, which made a
    16-year backfill's metadata calls quadratic (32.7 ms a call at 5,840 days, 11.8 ms at 365). The
    column schema is the asset's declared one (`declared_schema`): a full schema on every day's
    event cost a tenth of a year's backfill to serialize, and on one day it showed only when that
    day's event was the latest."""
    # Only the counted rows' days, not a copy of the counted rows (0.12 s for a year of raw_data).
    day_of_row = frame[PARTITION_COLUMN] if counted is None else frame[PARTITION_COLUMN][counted]
    days = list(context.partition_keys)
    shared = {
        "rows_in_run": len(day_of_row),
        "partitions_in_run": len(days),
        COLUMN_TYPES: dg.MetadataValue.json(column_types(frame)),
    }
    if len(days) == 1:
        own = (per_day or {}).get(days[0], {})
        return {**shared, "dagster/row_count": len(day_of_row), **own, **preview(frame)}
    last = preview(frame)
    if per_day is not None:
        counts = day_of_row.value_counts()
        rows = [
            {"day": day, "dagster/row_count": int(counts.get(day, 0)), **per_day.get(day, {})} for day in days
        ]
        earlier, recent = rows[:-RECENT_FACT_DAYS], rows[-RECENT_FACT_DAYS:]
        shared[PER_DAY_FACTS_ON] = days[-1]
        last[PER_DAY_FACTS] = records_table(recent)
        if earlier:
            shared[EARLIER_PER_DAY_FACTS_ON] = days[0]
            first = {PER_DAY_FACTS: records_table(earlier)}
            context.add_asset_metadata(first, asset_key=asset_key, partition_key=days[0])
    context.add_asset_metadata(last, asset_key=asset_key, partition_key=days[-1])
    return shared


def records_table(rows: list[dict]) -> dg.MetadataValue:
    """Rows of scalars as a table the UI renders; a key missing from a row is an empty cell."""
    columns: dict[str, str] = {}
    for row in rows:
        for name, value in row.items():
            columns.setdefault(name, "int" if isinstance(value, int) else "string")
    records = [dg.TableRecord({name: row.get(name) for name in columns}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=table_schema(columns))


def recorded_partition_facts(
    instance: dg.DagsterInstance, asset_key: str, days: Sequence[str]
) -> dict[str, dict]:
    """Each day's own facts (`dagster/row_count` and what `per_day` gave) from its latest
    materialization: on the day's event when a one-day run wrote it, else in a `per_day_facts`
    table its range run left on its last day (the run's recent days) or first day (the earlier
    ones). A holder's table is read with the others when that day is asked for and its latest event
    is the run's; else two more reads per holder: the run's record and the holder's events while it
    ran. A day never materialized, or whose run left no table, is absent."""
    key = dg.AssetKey(asset_key)
    wanted = set(days)
    if not wanted:
        return {}
    # Each day's latest event by its id (the index on asset, event type and partition), then those
    # events by id: asked for the days' events newest first, SQLite walked every materialization of
    # the asset (its index by id, each row's partition read from the table), 16x the work at 16x.
    latest_ids = instance.get_latest_storage_id_by_partition(
        key, dg.DagsterEventType.ASSET_MATERIALIZATION, wanted
    )
    if not latest_ids:  # an empty `storage_ids` filters nothing: every event of the asset
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, storage_ids=list(latest_ids.values())), limit=len(latest_ids)
    ).records
    latest = {record.partition_key: record for record in records}
    tables: dict[tuple[str, str], dict[str, dict]] = {}

    def held_by(record: dg.EventLogRecord, holder: str) -> dict[str, dict]:
        """The facts table on `holder`'s event of `record`'s run, by day, read once."""
        if (record.run_id, holder) not in tables:
            held = latest.get(holder)
            table = _facts_table(held) if held is not None and held.run_id == record.run_id else None
            tables[record.run_id, holder] = (
                table if table is not None else _range_run_facts(instance, key, record, holder)
            )
        return tables[record.run_id, holder]

    facts: dict[str, dict] = {}
    for day, record in latest.items():
        metadata = record.asset_materialization.metadata
        holders = [metadata[n].value for n in (PER_DAY_FACTS_ON, EARLIER_PER_DAY_FACTS_ON) if n in metadata]
        if not holders:
            facts[day] = {name: value.value for name, value in metadata.items()}
            continue
        # The recent table first: the row-count band's 14 days after a backfill are all in it.
        for holder in holders:
            if day in (table := held_by(record, holder)):
                facts[day] = table[day]
                break
    return facts


def _range_run_facts(
    instance: dg.DagsterInstance, key: dg.AssetKey, record: dg.EventLogRecord, holder: str
) -> dict[str, dict]:
    # A run stores its partitions' events in no set order, so the holder's event of the same run is
    # found among the holder's events while the run ran (others only if another run wrote it then).
    run = instance.get_run_record_by_id(record.run_id)
    if run is None or run.start_time is None:
        return {}
    during = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=key,
            asset_partitions=[holder],
            after_timestamp=run.start_time - 1,
            before_timestamp=run.end_time + 1 if run.end_time else None,
        ),
        limit=50,
    ).records
    for candidate in during:
        if candidate.run_id == record.run_id:
            table = _facts_table(candidate)
            if table is not None:
                return table
    return {}


def _facts_table(record: dg.EventLogRecord) -> dict[str, dict] | None:
    """The `per_day_facts` rows on `record`'s materialization, by day; None where it has none."""
    materialization = record.asset_materialization
    table = materialization.metadata.get(PER_DAY_FACTS) if materialization is not None else None
    return None if table is None else {row.data["day"]: dict(row.data) for row in table.value.records}


def column_types(frame: "pd.DataFrame") -> dict[str, str]:
    return {str(name): str(dtype) for name, dtype in frame.dtypes.items()}


def recorded_column_types(context: dg.AssetExecutionContext, asset_key: str) -> dict[str, str] | None:
    """`column_types` of the asset's latest materialization; read before this run records its own."""
    records = context.instance.fetch_materializations(dg.AssetKey(asset_key), limit=1).records
    materialization = records[0].asset_materialization if records else None
    recorded = materialization.metadata.get(COLUMN_TYPES) if materialization else None
    return dict(recorded.value) if recorded is not None else None


def table_schema(types: Mapping[str, str]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=name, type=dtype) for name, dtype in types.items()])


def declared_schema(types: Mapping[str, str]) -> dict:
    """Definition metadata: the table's columns as the UI shows them (Overview and Columns tabs)
    from the moment the code location loads; `column_schema_unchanged` watches what runs write."""
    return {"dagster/column_schema": table_schema(types)}


def every_landed_day() -> dg.AssetIn:
    """A daily table read whole by an unpartitioned asset: every day landed so far, none required."""
    return dg.AssetIn(metadata={ALLOW_MISSING_PARTITIONS: True}, dagster_type=DataFrame)


def png_markdown(png: bytes, alt: str = "plot") -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI (Markdown metadata with a data URI)."""
    import base64

    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def _cell(value: object) -> str | int | float | bool | None:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    return value if isinstance(value, str | int | float | bool) else str(value)


def preview(frame: "pd.DataFrame", rows: int = 5) -> dict:
    """The first rows as a table the UI renders, so a user sees what the asset holds."""
    head = frame.head(rows)
    records = [
        dg.TableRecord({str(k): _cell(v) for k, v in row.items()}) for row in head.to_dict(orient="records")
    ]
    return {"preview": dg.MetadataValue.table(records=records, schema=table_schema(column_types(head)))}
