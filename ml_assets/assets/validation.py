"""Row rules over raw_data: valid rows with the label, and a reason-coded quarantine."""

from typing import TYPE_CHECKING

import dagster as dg

from ml_assets import checks, kubernetes
from ml_assets.assets.metadata import (
    OWNERS,
    DataFrame,
    column_types,
    declared_schema,
    describe_partitions,
    recorded_column_types,
)
from ml_assets.domain.contract import PARTITION_COLUMN
from ml_assets.domain.tables import QUARANTINE_TYPES, VALIDATED_TYPES
from ml_assets.partitions import landing_days, single_run

if TYPE_CHECKING:
    import pandas as pd


def _per_partition(raw: "pd.DataFrame", valid: "pd.DataFrame", quarantine: "pd.DataFrame", days: list[str]):
    counts = {
        name: frame.groupby(PARTITION_COLUMN, observed=True).size()
        for name, frame in (("raw", raw), ("valid", valid), ("quarantined", quarantine))
    }
    return [{"day": day, **{name: int(c.get(day, 0)) for name, c in counts.items()}} for day in days]


@dg.multi_asset(
    outs={
        "validated_data": dg.AssetOut(
            io_manager_key="io_manager",
            dagster_type=DataFrame,
            group_name="validation",
            owners=OWNERS,
            kinds={"pandas", "parquet"},
            code_version="1",
            metadata=declared_schema(VALIDATED_TYPES),
            description="Flights that pass every row rule, with flight_date and the delay label.",
        ),
        "quarantine": dg.AssetOut(
            io_manager_key="io_manager",
            dagster_type=DataFrame,
            group_name="validation",
            owners=OWNERS,
            kinds={"pandas", "parquet"},
            code_version="1",
            metadata=declared_schema(QUARANTINE_TYPES),
            description="Rows and refused files that broke a rule: source file, row number, reason, detail.",
        ),
    },
    ins={"raw_data": dg.AssetIn(dagster_type=DataFrame)},
    partitions_def=landing_days,
    backfill_policy=single_run,
    check_specs=checks.VALIDATED_DATA_CHECKS,
    op_tags=kubernetes.INGEST,
)
def validated_data(context: dg.AssetExecutionContext, raw_data):
    from ml_assets.domain.quality import duplicate_keys, quarantine_shares, range_violations
    from ml_assets.domain.validation import null_counts, validate_flights

    days = list(context.partition_keys)
    result = validate_flights(raw_data)
    per_partition = _per_partition(raw_data, result.valid, result.quarantine, days)
    reasons = result.reason_counts
    previous_columns = recorded_column_types(context, "validated_data")
    yield dg.Output(
        result.valid,
        output_name="validated_data",
        metadata={
            **describe_partitions(context, result.valid, "validated_data"),
            "raw_rows": len(raw_data),
            "quarantined_rows": len(result.quarantine),
            "quarantined_share": len(result.quarantine) / max(len(raw_data), 1),
        },
    )
    yield dg.Output(
        result.quarantine,
        output_name="quarantine",
        metadata={
            **describe_partitions(context, result.quarantine, "quarantine"),
            "reasons": dg.MetadataValue.json(reasons),
        },
    )
    yield checks.has_rows(len(result.valid))
    yield checks.required_not_null(null_counts(result.valid), len(result.valid))
    yield checks.value_ranges(range_violations(result.valid))
    yield checks.unique_flight_key(duplicate_keys(result.valid))
    yield checks.rows_reconcile(per_partition)
    yield checks.quarantine_share(quarantine_shares(per_partition))
    yield checks.column_schema_unchanged(checks.VALIDATED_DATA, previous_columns, column_types(result.valid))
    if reasons:
        context.log.warning(f"quarantined {len(result.quarantine)} rows by reason: {reasons}")
