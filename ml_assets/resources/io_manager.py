"""Parquet tables per partition, written atomically; partition ranges read and written in one step."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from ml_assets.domain.contract import PARTITION_COLUMN
from ml_assets.resources.files import write_bytes_atomic

# Input metadata: load the partitions that exist instead of failing on a missing one.
ALLOW_MISSING_PARTITIONS = "allow_missing_partitions"


def _to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def split_by_partition(frame: pd.DataFrame, partition_keys: list[str]) -> dict[str, pd.DataFrame]:
    """Rows of each partition key (an empty, typed frame for a key with no rows)."""
    if PARTITION_COLUMN not in frame.columns:
        raise ValueError(
            f"a partitioned table must carry a '{PARTITION_COLUMN}' column to be split by partition"
        )
    groups = dict(tuple(frame.groupby(PARTITION_COLUMN, sort=False, observed=True)))
    unknown = set(groups) - set(partition_keys)
    if unknown:
        raise ValueError(f"rows for partitions outside this run: {sorted(unknown)[:5]}")
    return {key: groups.get(key, frame.iloc[0:0]) for key in partition_keys}


class ParquetIOManager(dg.ConfigurableIOManager):
    """DataFrames as `<base_dir>/<asset>/<partition>.parquet`; records (dicts) as JSON.

    A multi-partition output (a single-run backfill) is one DataFrame with a `landing_day` column,
    split here into one file per partition, so re-materializing a partition replaces it exactly.
    """

    base_dir: str = Field(description="Directory under which asset outputs are stored.")

    def _asset_dir(self, asset_key: dg.AssetKey) -> Path:
        return Path(self.base_dir).joinpath(*asset_key.path)

    def _path(self, asset_key: dg.AssetKey, partition_key: str | None, suffix: str) -> Path:
        if partition_key is None:
            return self._asset_dir(asset_key).with_suffix(suffix)
        return self._asset_dir(asset_key) / f"{partition_key}{suffix}"

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        key = context.asset_key
        if isinstance(obj, pd.DataFrame):
            if context.has_asset_partitions:
                parts = split_by_partition(obj, list(context.asset_partition_keys))
                for partition_key, part in parts.items():
                    write_bytes_atomic(self._path(key, partition_key, ".parquet"), _to_parquet_bytes(part))
            else:
                write_bytes_atomic(self._path(key, None, ".parquet"), _to_parquet_bytes(obj))
            return
        if isinstance(obj, dict):
            payload = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
            write_bytes_atomic(self._path(key, None, ".json"), payload)
            return
        raise TypeError(f"{key.to_user_string()}: cannot store a {type(obj).__name__}")

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            paths = [self._path(key, k, ".parquet") for k in keys]
            if (context.definition_metadata or {}).get(ALLOW_MISSING_PARTITIONS):
                # A day held back by a blocking check has no file: train on the days that passed.
                missing = [k for k, p in zip(keys, paths, strict=True) if not p.exists()]
                if missing:
                    context.log.warning(
                        f"{key.to_user_string()}: {len(missing)} of {len(keys)} partitions not "
                        f"materialized, loading the rest: {missing[:10]}"
                    )
                paths = [p for p in paths if p.exists()]
            frames = [pd.read_parquet(path) for path in paths]
            non_empty = [frame for frame in frames if len(frame)] or frames[:1]
            return pd.concat(non_empty, ignore_index=True) if non_empty else pd.DataFrame()
        json_path = self._path(key, None, ".json")
        if json_path.exists():
            return json.loads(json_path.read_text())
        return pd.read_parquet(self._path(key, None, ".parquet"))
