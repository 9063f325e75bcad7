"""Materialization metadata shared by the partitioned assets."""

import dagster as dg
import pandas as pd


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
