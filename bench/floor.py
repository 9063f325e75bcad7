"""Dagster's own floor for the backfill: the same four daily assets doing no work.

The same partitions (`landing_days`), the same single-run backfill policy and the same shape
(raw_data -> validated_data + quarantine -> features), but each step only reports its
materializations: no files read, no tables stored, no checks, no metadata. What a run of this costs
is what any Dagster graph of four daily-partitioned assets pays on the same instance, so the bench
can tell Dagster's bookkeeping from our code. Loaded by the CLI with `-f bench/floor.py` (a
measurement fixture, not a code location: it has no Definitions of its own).
"""

import dagster as dg

from ml_assets.partitions import landing_days, single_run


@dg.asset(partitions_def=landing_days, backfill_policy=single_run)
def raw_data() -> dg.MaterializeResult:
    return dg.MaterializeResult()


@dg.multi_asset(
    specs=[
        dg.AssetSpec("validated_data", deps=[raw_data]),
        dg.AssetSpec("quarantine", deps=[raw_data]),
    ],
    partitions_def=landing_days,
    backfill_policy=single_run,
)
def validated_data():
    yield dg.MaterializeResult(asset_key="validated_data")
    yield dg.MaterializeResult(asset_key="quarantine")


@dg.asset(partitions_def=landing_days, backfill_policy=single_run, deps=["validated_data"])
def features() -> dg.MaterializeResult:
    return dg.MaterializeResult()
