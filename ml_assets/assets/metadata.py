"""Materialization metadata shared by the partitioned assets."""

import dagster as dg
import pandas as pd

# Who answers for every asset of this code location, shown in the UI and in alerts.
OWNERS = ["team:ml-platform"]


def row_count(context: dg.AssetExecutionContext, rows: int) -> dict:
    """`dagster/row_count` when the run holds one partition; in a range run the same metadata lands
    on every partition, so the figure is named for the run instead of posing as a per-day count."""
    partitions = len(context.partition_keys) if context.has_partition_key_range else 1
    if partitions == 1:
        return {"dagster/row_count": rows}
    return {"rows_in_run": rows, "partitions_in_run": partitions}


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
