"""What the assets share: owners, the table type, and materialization metadata.

Nothing here imports pandas at module load: the code location loads without it (about 0.2 s of
0.6 s), and the steps that handle tables import it when they run.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING

import dagster as dg

from ml_assets.domain.contract import PARTITION_COLUMN

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


def describe_partitions(
    context: dg.AssetExecutionContext,
    frame: "pd.DataFrame",
    asset_key: str | None = None,
    counted: "pd.Series | None" = None,
    per_day: dict[str, dict] | None = None,
) -> dict:
    """Metadata of a partitioned table: returns what every partition of the run gets, and writes
    what is a day's own to that day.

    Every day: the run's totals and its `column_types` (compact JSON, what the schema check
    compares). A one-day run returns its day's own facts with them (`dagster/row_count` of the rows
    marked by `counted`, all by default; `per_day`'s entry, the landing file's facts that the sensor
    and the row-count check read back; the preview), and makes no per-partition call: each
    `add_asset_metadata(partition_key=...)` makes Dagster re-read every dynamic partition key to
    validate the day. A range run writes `per_day` and the row count day by day where given (only
    `raw_data`: derived tables' counts by day are in the `rows_reconcile` check), and the preview
    on its last day only. The column schema is the asset's declared one (`declared_schema`): a full
    schema on every day's event cost a tenth of a year's backfill to serialize, and on one day it
    showed only when that day's event happened to be the asset's latest."""
    keep = frame if counted is None else frame[counted]
    days = list(context.partition_keys)
    shared = {
        "rows_in_run": len(keep),
        "partitions_in_run": len(days),
        COLUMN_TYPES: dg.MetadataValue.json(column_types(frame)),
    }
    if len(days) == 1:
        own = (per_day or {}).get(days[0], {})
        return {**shared, "dagster/row_count": len(keep), **own, **preview(frame)}
    last = preview(frame)
    if per_day is not None:
        counts = keep.groupby(PARTITION_COLUMN, observed=True).size()
        for day in days:
            metadata = {"dagster/row_count": int(counts.get(day, 0)), **per_day.get(day, {})}
            context.add_asset_metadata(
                {**metadata, **last} if day == days[-1] else metadata, asset_key=asset_key, partition_key=day
            )
    else:
        context.add_asset_metadata(last, asset_key=asset_key, partition_key=days[-1])
    return shared


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
