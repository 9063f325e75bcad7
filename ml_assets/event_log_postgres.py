"""The production instance's event log: Dagster's Postgres storage, writing a run's plan at once.

With `DAGSTER_EVENT_BATCH_SIZE` set (the image sets it), Dagster hands its event storage whole
batches. Its Postgres storage inserts one output's materializations in one statement, but stores any
other batch one event at a time, each on a new connection (its engine pools none: a new server
backend per event) with two commits: a year's backfill plans 1,460 partition events, which took
15 of the 16 s Dagster's own floor run spent on a local PostgreSQL. This storage writes such a batch
(planned materializations and checks) in one transaction, the same rows as the stock storage
(ml_assets_tests/integration/test_event_log_postgres.py compares every index table).
`deploy/dagster.production.yaml` names it; it needs `dagster-postgres` (the `production` extra).
"""

from collections.abc import Mapping, Sequence
from typing import Any

from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log.event_log import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

from ml_assets.event_log import batchable, index_asset_events, store_check_events


class BatchingPostgresEventLogStorage(PostgresEventLogStorage):
    """PostgresEventLogStorage whose `store_event_batch` writes any batch in one transaction."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> "BatchingPostgresEventLogStorage":
        # The stock classmethod builds the stock class; the same arguments, this class.
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not batchable(events):
            super().store_event_batch(events)
            return
        # As the stock storage does with every batch it is handed (its one-statement path and its
        # one-by-one path alike): failed-to-materialize events are not stored from a batch.
        events = [e for e in events if not e.get_dagster_event().is_asset_failed_to_materialize]
        if not events:
            return
        # One multi-row INSERT whose RETURNING ids follow the VALUES order, as in the stock storage's
        # own batch path; the index rows in the same transaction, so a failure leaves none of them.
        # No NOTIFY: Dagster's event watcher polls (its batch path sends none either).
        insert = self.prepare_insert_event_batch(events).returning(SqlEventLogStorageTable.c.id)
        with self.index_transaction() as conn:
            event_ids = [int(row[0]) for row in conn.execute(insert).fetchall()]
            stored = list(zip(events, event_ids, strict=True))
            index_asset_events(self, conn, stored)
        store_check_events(self, stored)
