"""The production instance's storages: Dagster's Postgres run, event log and schedule storages, each
keeping one connection open, and the event log writing a run's plan at once.

Dagster's Postgres storages pool no connection (NullPool): every read or write opens one, and so
forks a server backend. A run's step start and success, logs and check results are written one by
one, so a one-day run on a local PostgreSQL took 1.7-1.8 s against 0.8-1.0 s with one connection kept
(bench/run.py's Postgres phases). Each storage here keeps one idle connection (more open and close
as before when threads overlap), checks it before use (a connection the server dropped while idle is
replaced, not an error), and is not inherited by a forked process: the fork's copy of the pool is
discarded (not closed) in the child, which connects on its own (`raw_data` forks its parsing
workers, and only while no other thread runs, `pools.can_fork`, so no connection is in use at the
fork). psycopg2 closes a connection only in the process that opened it, so a child that exits
leaves the parent's session intact.

With `DAGSTER_EVENT_BATCH_SIZE` set (the image sets it), Dagster hands its event storage whole
batches. Its Postgres storage inserts one output's materializations in one statement, but stores any
other batch one event at a time, each with two commits: a year's backfill plans 1,460 partition
events, which took 15 of the 16 s Dagster's own floor run spent on a local PostgreSQL. The event log
here writes such a batch (planned materializations and checks) in one transaction, the same rows as
the stock storage (ml_assets_tests/integration/test_postgres_storage.py compares every index table).
`deploy/dagster.production.yaml` names these; they need `dagster-postgres` (the `production` extra).
"""

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy
import sqlalchemy.pool
from dagster._core.events import ASSET_CHECK_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

from ml_assets.event_log import (
    KnownTables,
    SharedIndexTransaction,
    batchable,
    index_asset_events,
    store_check_events,
)
from ml_assets.pools import keep_from_forked_children


def one_connection_engine(postgres_url: str, token_provider=None) -> sqlalchemy.Engine:
    """An engine for a Dagster Postgres storage that keeps one connection between calls.

    As Dagster's own (autocommit, its token provider for cloud IAM auth), but a queue pool of one
    that never makes a caller wait (`max_overflow=-1`: a second concurrent caller connects and
    disconnects, as every caller did before), pinged before each use, and dropped in forked children."""
    engine = create_pg_engine(
        postgres_url,
        token_provider,
        isolation_level="AUTOCOMMIT",
        poolclass=sqlalchemy.pool.QueuePool,
        pool_size=1,
        max_overflow=-1,
        pool_pre_ping=True,
    )
    keep_from_forked_children(engine)
    return engine


class _OneConnection:
    """A Dagster Postgres storage built from the same config, its engine keeping one connection."""

    postgres_url: str
    _token_provider: Any

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]):
        # The stock classmethods build the stock classes; the same arguments, this class.
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The stock engine (no pool) has only checked the tables exist; it holds no connection.
        self._engine = one_connection_engine(self.postgres_url, self._token_provider)

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()  # the kept connection, closed with the instance


class OneConnectionPostgresRunStorage(_OneConnection, PostgresRunStorage):
    """PostgresRunStorage keeping one connection open."""


class OneConnectionPostgresScheduleStorage(_OneConnection, PostgresScheduleStorage):
    """PostgresScheduleStorage keeping one connection open."""


class BatchingPostgresEventLogStorage(
    KnownTables, SharedIndexTransaction, _OneConnection, PostgresEventLogStorage
):
    """PostgresEventLogStorage keeping one connection open, whose `store_event_batch` writes any
    batch in one transaction, and a check result's rows in one."""

    def _connect(self):
        shared = self._shared_index_connection()
        # Inside `_index_transaction`: its connection, committed with it.
        return contextlib.nullcontext(shared) if shared is not None else super()._connect()

    def store_event(self, event: EventLogEntry) -> None:
        if not (event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS):
            super().store_event(event)
            return
        # The stock storage's writes (the event, its NOTIFY, the check's row) in one transaction:
        # on a connection in autocommit, each was a commit of its own.
        with self._index_transaction():
            super().store_event(event)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not batchable(events):
            super().store_event_batch(events)
            return
        # As the stock storage does with every batch it is handed (its one-statement path and its
        # one-by-one path alike): failed-to-materialize events are not stored from a batch.
        events = [e for e in events if not e.get_dagster_event().is_asset_failed_to_materialize]
        if not events:
            return
        # The rows the stock storage's batch path inserts, as one executemany: SQLAlchemy sends them
        # in pages of multi-row INSERTs from one cached statement (its "insertmanyvalues"), their
        # RETURNING ids in the rows' order. The stock path builds and compiles a statement with a
        # VALUES row per event each time: for a 365-event batch most of the batch's time. The index
        # rows in the same transaction, so a failure leaves none of them. No NOTIFY: Dagster's
        # event watcher polls (its batch path sends none either).
        rows = [self._event_to_row(event) for event in events]
        insert = SqlEventLogStorageTable.insert().returning(
            SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
        )
        with self._index_transaction() as conn:
            event_ids = [int(row[0]) for row in conn.execute(insert, rows).all()]
            stored = list(zip(events, event_ids, strict=True))
            index_asset_events(self, conn, stored)
            store_check_events(self, stored)  # a run's planned checks: their rows in this transaction
