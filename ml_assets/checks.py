"""Asset checks: specs declared beside their assets, results built from in-memory figures.

The checks run inside the asset's step (check_specs), so they see the data just produced
without reading it back, and a blocking failure stops downstream assets in the same run.
"""

from __future__ import annotations

import dagster as dg

RAW_DATA = dg.AssetKey("raw_data")
VALIDATED_DATA = dg.AssetKey("validated_data")
TRAINED_MODEL = dg.AssetKey("trained_model")

RAW_DATA_CHECKS = [
    dg.AssetCheckSpec(
        "files_parse",
        asset=RAW_DATA,
        description="Every landing file of the run parses under the landing contract.",
    )
]
VALIDATED_DATA_CHECKS = [
    dg.AssetCheckSpec("has_rows", asset=VALIDATED_DATA, blocking=True, description="At least one valid row."),
    dg.AssetCheckSpec(
        "required_columns_not_null",
        asset=VALIDATED_DATA,
        blocking=True,
        description="No nulls in the contract's required columns of valid rows.",
    ),
    dg.AssetCheckSpec(
        "rows_reconcile",
        asset=VALIDATED_DATA,
        blocking=True,
        description="raw rows = valid rows + quarantined rows, for every partition.",
    ),
]
TRAINED_MODEL_CHECKS = [
    dg.AssetCheckSpec(
        "holdout_roc_auc_floor",
        asset=TRAINED_MODEL,
        blocking=True,
        description="Holdout ROC AUC is at least the floor; a weaker model cannot become champion.",
    )
]


def raw_files_parse(rejected: list[dict], days: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="files_parse",
        asset_key=RAW_DATA,
        passed=not rejected,
        metadata={
            "files": days,
            "files_rejected": len(rejected),
            "rejections": dg.MetadataValue.json(rejected[:50]),
        },
        description="; ".join(f"{r['file']}: {r['rule']}" for r in rejected[:5]) or None,
    )


def has_rows(valid_rows: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="has_rows",
        asset_key=VALIDATED_DATA,
        passed=valid_rows > 0,
        metadata={"valid_rows": valid_rows},
    )


def required_not_null(null_counts: dict[str, int]) -> dg.AssetCheckResult:
    offending = {column: n for column, n in null_counts.items() if n}
    return dg.AssetCheckResult(
        check_name="required_columns_not_null",
        asset_key=VALIDATED_DATA,
        passed=not offending,
        metadata={"null_counts": dg.MetadataValue.json(null_counts)},
    )


def rows_reconcile(per_partition: list[dict]) -> dg.AssetCheckResult:
    broken = [p for p in per_partition if p["raw"] != p["valid"] + p["quarantined"]]
    return dg.AssetCheckResult(
        check_name="rows_reconcile",
        asset_key=VALIDATED_DATA,
        passed=not broken,
        metadata={
            "partitions": len(per_partition),
            "partitions_not_reconciled": dg.MetadataValue.json(broken[:50]),
        },
    )


def holdout_auc_floor(roc_auc: float, floor: float) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="holdout_roc_auc_floor",
        asset_key=TRAINED_MODEL,
        passed=roc_auc >= floor,
        metadata={"holdout_roc_auc": roc_auc, "floor": floor},
    )
