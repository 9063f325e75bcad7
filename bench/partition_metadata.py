"""What Dagster's per-partition metadata costs in a range run, by the number of days (README figure 7).

`python -m bench.partition_metadata 365 1460 5840`: one single-run backfill per count, on a sqlite
instance of its own, of an asset that only calls `add_asset_metadata(partition_key=...)` once per
day (what `raw_data` did for its per-day facts until it wrote them as one table on the run's last
day); prints the loop's time and the cost per call.
"""

import datetime
import sys
import tempfile
import time

import dagster as dg

DAYS = dg.DynamicPartitionsDefinition(name="days")
FACTS = {"dagster/row_count": 900, "sha256": "0" * 64, "bytes": 90_000}


class Discard(dg.IOManager):
    def handle_output(self, context, obj) -> None:
        return None

    def load_input(self, context) -> None:
        return None


def seconds_of_metadata_calls(days: int) -> float:
    timing: dict[str, float] = {}

    @dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run(), io_manager_key="discard")
    def per_day_facts(context: dg.AssetExecutionContext) -> int:
        started = time.perf_counter()
        for day in context.partition_keys:
            context.add_asset_metadata(FACTS, partition_key=day)
        timing["calls"] = time.perf_counter() - started
        return 0

    start = datetime.date(2013, 1, 1)
    keys = [str(start + datetime.timedelta(days=n)) for n in range(days)]
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
        instance.add_dynamic_partitions(DAYS.name, keys)
        result = dg.materialize(
            [per_day_facts],
            instance=instance,
            resources={"discard": Discard()},
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        )
        assert result.success
    return timing["calls"]


def main(argv: list[str]) -> None:
    for days in [int(a) for a in argv] or [365, 1460, 5840]:
        seconds = seconds_of_metadata_calls(days)
        per_call = seconds / days * 1000
        print(f"{days:>6} days: {seconds:7.2f} s of add_asset_metadata, {per_call:6.2f} ms a call")


if __name__ == "__main__":
    main(sys.argv[1:])
