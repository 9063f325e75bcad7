"""The local instance's event log: Dagster's sqlite storage, writing each batch of events at once.

With `DAGSTER_EVENT_BATCH_SIZE` set, Dagster hands its event storage whole batches: a run's planned
events (a year's backfill: 1,460 of them) and each step output's materializations (365 for one
asset). Its Postgres storage inserts a batch in one statement; its sqlite storage, the one `dagster
dev` runs on, stores them one at a time, each with a new engine, connection and commit in the run's
file and again in the index: 6 ms an event, half of a year's backfill. This storage writes a batch in
one transaction per file, the same rows (ml_assets_tests/test_event_log.py compares them with the
stock storage's). `dagster.yaml` (the `make dev` instance) names it; production runs on Postgres.
"""

import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import dagster as dg
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, BATCH_WRITABLE_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData


def default_base_dir() -> str:
    """Where Dagster's default sqlite instance keeps its event logs: $DAGSTER_HOME/history/runs."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise dg.DagsterInvariantViolationError(
            "BatchingSqliteEventLogStorage: set DAGSTER_HOME or give the storage a base_dir"
        )
    return os.path.join(os.path.abspath(os.path.expanduser(home)), "history", "runs")


def asset_entry_updates(stored: list[tuple[EventLogEntry, int]]) -> Iterator[tuple[EventLogEntry, int]]:
    """The events whose asset-table update leaves the same row as applying every event in order.

    Each event of one type sets the same columns, so of a key's events of one type (a batch always
    holds one output's or one run's plan) only the last one counts; a key with mixed types keeps all."""
    by_key: dict[dg.AssetKey, list[tuple[EventLogEntry, int]]] = defaultdict(list)
    for event, event_id in stored:
        by_key[event.get_dagster_event().asset_key].append((event, event_id))
    for events in by_key.values():
        if len({event.dagster_event_type for event, _ in events}) == 1:
            yield events[-1]
        else:
            yield from events


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose `store_event_batch` writes a batch in one transaction per file."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        self._engines: dict[str, object] = {}
        super().__init__(base_dir or default_base_dir(), inst_data=inst_data)

    @classmethod
    def config_type(cls):
        return {
            "base_dir": dg.Field(
                dg.StringSource,
                is_required=False,
                description="Where the run and index sqlite files go ($DAGSTER_HOME/history/runs if unset).",
            )
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # ty: ignore[invalid-method-override]
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str):
        # As the stock storage (a connection and transaction per call, no pooled connections), but
        # each file's engine is made once: creating and disposing one took 0.7 of the 2.5 ms an
        # unbatched event costs.
        with self._db_lock:
            engine = self._engines.get(shard)
            if engine is None:
                import sqlalchemy
                from sqlalchemy.pool import NullPool

                engine = sqlalchemy.create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=NullPool,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
                self._engines[shard] = engine
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def dispose(self) -> None:
        super().dispose()
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if (
            len(events) < 2
            or len({event.run_id for event in events}) != 1
            or any(event.dagster_event_type not in BATCH_WRITABLE_EVENTS for event in events)
        ):
            super().store_event_batch(events)  # one by one, as the stock storage does
            return
        statements = [self.prepare_insert_event(event) for event in events]
        # As store_event: the run's own file first, then the cross-run index, then check rows.
        with self.run_connection(events[0].run_id) as conn:
            for statement in statements:
                conn.execute(statement)
        event_ids: list[int] = []
        with self.index_transaction() as conn:
            for statement in statements:
                with db_result(conn, statement) as result:
                    event_ids.append(result.inserted_primary_key[0])
            stored = list(zip(events, event_ids, strict=True))
            assets = [(e, i) for e, i in stored if e.dagster_event_type in ASSET_EVENTS]
            if assets:
                self._store_asset_event_tags(conn, [e for e, _ in assets], [i for _, i in assets])
                for event, event_id in asset_entry_updates(assets):
                    self._store_asset_event(conn, event, event_id)
        for event, event_id in stored:
            if event.dagster_event_type in ASSET_CHECK_EVENTS:
                self.store_asset_check_event(event, event_id)
