"""Materialization metadata shared by the partitioned assets."""

import dagster as dg
import pandas as pd

from ml_assets.domain.contract import PARTITION_COLUMN

# Who answers for every asset of this code location, shown in the UI and in alerts.
OWNERS = ["team:ml-platform"]


def rows_per_partition(
    context: dg.AssetExecutionContext,
    frame: pd.DataFrame,
    asset_key: str | None = None,
    counted: pd.Series | None = None,
) -> dict:
    """`dagster/row_count` on each partition's own materialization (its rows, not the run's), and the
    run's totals as output metadata. `counted` marks the rows to count (all by default).

    Output metadata lands on every partition of a range run, so anything per day goes through
    `add_asset_metadata(partition_key=...)`: a year's run then writes 365 small events, not 365
    copies of a year-long list."""
    keep = frame if counted is None else frame[counted]
    counts = keep.groupby(PARTITION_COLUMN, observed=True).size() if PARTITION_COLUMN in keep else None
    for day in context.partition_keys:
        rows = int(counts.get(day, 0)) if counts is not None else 0
        context.add_asset_metadata({"dagster/row_count": rows}, asset_key=asset_key, partition_key=day)
    return {"rows_in_run": len(keep), "partitions_in_run": len(context.partition_keys)}


def column_schema(frame: pd.DataFrame) -> dict:
    """`dagster/column_schema` of a table: what the UI shows and the schema-change checks compare."""
    columns = [dg.TableColumn(name=str(name), type=str(dtype)) for name, dtype in frame.dtypes.items()]
    return {"dagster/column_schema": dg.TableSchema(columns=columns)}


def png_markdown(png: bytes, alt: str = "plot") -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI (Markdown metadata with a data URI)."""
    import base64

    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def _cell(value: object) -> str | int | float | bool | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    return value if isinstance(value, str | int | float | bool) else str(value)


def preview(frame: pd.DataFrame, rows: int = 5) -> dict:
    """The first rows as a table the UI renders, so a user sees what the asset holds."""
    head = frame.head(rows)
    columns = [dg.TableColumn(name=str(name), type=str(dtype)) for name, dtype in head.dtypes.items()]
    records = [
        dg.TableRecord({str(k): _cell(v) for k, v in row.items()}) for row in head.to_dict(orient="records")
    ]
    return {"preview": dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))}
