"""One partition per landing day, registered when the day's file lands."""

import dagster as dg

landing_days = dg.DynamicPartitionsDefinition(name="landing_days")

# A backfill of many days runs as one run; the IO manager reads and writes the partition range.
single_run = dg.BackfillPolicy.single_run()
