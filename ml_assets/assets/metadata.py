"""What the assets share: owners, the table type, and materialization metadata.

Nothing here imports pandas at module load: the code location loads without it (about 0.2 s of
0.6 s), and the steps that handle tables import it when they run.
"""

from typing import TYPE_CHECKING

import dagster as dg

from ml_assets.domain.contract import PARTITION_COLUMN

if TYPE_CHECKING:
    import pandas as pd

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
    """Metadata of a partitioned table: returns what every partition of the run shares, and writes
    what is a day's own to that day.

    Shared: the run's totals and the column schema (Dagster's schema-change check compares the
    latest two events, so every event carries it); in a one-day run also `dagster/row_count`.
    A day's own: with `per_day` (the landing file's facts that the sensor and the row-count check
    read back), each day gets one `add_asset_metadata` call with its `dagster/row_count` (rows
    marked by `counted`, all by default). Each such call makes Dagster re-read every dynamic
    partition key to validate the day (3 queries), so derived tables make none per day: a range
    run's counts by day are in the `rows_reconcile` check (raw, valid and quarantined rows; features
    keep every valid row). The preview goes on the run's last day, the event the UI shows."""
    keep = frame if counted is None else frame[counted]
    days = list(context.partition_keys)
    shared = {"rows_in_run": len(keep), "partitions_in_run": len(days), **column_schema(frame)}
    if per_day is not None:
        counts = keep.groupby(PARTITION_COLUMN, observed=True).size()
        for day in days:
            metadata = {"dagster/row_count": int(counts.get(day, 0)), **per_day.get(day, {})}
            context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=day)
    elif len(days) == 1:
        shared["dagster/row_count"] = len(keep)
    context.add_asset_metadata(preview(frame), asset_key=asset_key, partition_key=days[-1])
    return shared


def column_schema(frame: "pd.DataFrame") -> dict:
    """`dagster/column_schema`: what the UI shows and the schema-change checks compare."""
    columns = [dg.TableColumn(name=str(name), type=str(dtype)) for name, dtype in frame.dtypes.items()]
    return {"dagster/column_schema": dg.TableSchema(columns=columns)}


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
    schema = column_schema(head)["dagster/column_schema"]
    return {"preview": dg.MetadataValue.table(records=records, schema=schema)}
