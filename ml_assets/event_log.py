"""The local instance's event log: Dagster's sqlite storage, writing each batch of events at once.

With `DAGSTER_EVENT_BATCH_SIZE` set, Dagster hands its event storage whole batches: a run's planned
events (a year's backfill: 1,460 of them) and each step output's materializations (365 for one
asset). Its Postgres storage inserts a batch in one statement; its sqlite storage, the one `dagster
dev` runs on, stores them one at a time, each with a new engine, connection and commit in the run's
file and again in the index: 6 ms an event, half of a year's backfill. This storage writes a batch in
one transaction per file, the same rows (ml_assets_tests/test_event_log.py compares them with the
stock storage's). `dagster.yaml` (the `make dev` instance) names it; production runs on Postgres.

It also keeps a connection open to the index and to the run files it wrote last (the stock storage
opens and closes one per call, and closing the last connection to a WAL database checkpoints it and
deletes its log: a one-day run 0.99-1.26 s -> 0.76-0.84 s, the year's backfill 7.45-7.85 s ->
6.74-7.11 s). Idle, a connection holds no lock other processes wait on. A forked child never uses
or closes the ones it inherits (`pools.keep_from_forked_children`).
"""

import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import dagster as dg
import sqlalchemy as db
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, BATCH_WRITABLE_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData

from ml_assets.pools import keep_from_forked_children


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


def batchable(events: Sequence[EventLogEntry]) -> bool:
    """Whether a batch goes in at once: two or more of one run's batch-writable events (a run's plan,
    one output's materializations); anything else takes the stock one-by-one path."""
    return (
        len(events) >= 2
        and len({event.run_id for event in events}) == 1
        and all(event.dagster_event_type in BATCH_WRITABLE_EVENTS for event in events)
    )


def index_asset_events(storage: SqlEventLogStorage, conn, stored: list[tuple[EventLogEntry, int]]) -> None:
    """What store_event adds to the index for a batch's asset events, in the caller's transaction:
    their tags, and the asset table's rows (only the updates that leave a different row)."""
    assets = [(e, i) for e, i in stored if e.dagster_event_type in ASSET_EVENTS]
    if assets:
        storage._store_asset_event_tags(conn, [e for e, _ in assets], [i for _, i in assets])
        for event, event_id in asset_entry_updates(assets):
            storage._store_asset_event(conn, event, event_id)


def store_check_events(storage: SqlEventLogStorage, stored: list[tuple[EventLogEntry, int]]) -> None:
    """The check rows store_event writes for a batch's check events (a run's plan has one per check)."""
    for event, event_id in stored:
        if event.dagster_event_type in ASSET_CHECK_EVENTS:
            storage.store_asset_check_event(event, event_id)


class SharedIndexTransaction:
    """For an event log storage: `_index_transaction()`, one transaction on the index that every
    index connection this thread asks for inside shares (the storage's `_connect` gives it out),
    Dagster's own writes included, which open a connection and commit each: a run's planned checks'
    rows and a check result's rows go in one commit instead of one each."""

    def _shared_index_connection(self):
        local = self.__dict__.get("_open_index")
        return getattr(local, "conn", None)

    @contextmanager
    def _index_transaction(self):
        shared = self._shared_index_connection()
        if shared is not None:  # already inside one: the same transaction, left open for it
            yield shared
            return
        local = self.__dict__.setdefault("_open_index", threading.local())
        with self.index_transaction() as conn:  # ty: ignore[unresolved-attribute]
            local.conn = conn
            try:
                yield conn
            finally:
                local.conn = None


class KnownTables:
    """For an event log storage: `has_table` asks the database once for each table it finds.

    Dagster asks its event storage whether one of its newer tables exists before most uses of it:
    each check result's row (`supports_asset_checks`), each dynamic partition looked up, each
    event's tags; the webserver, for each asset node's checks (dagster-io/dagster#33749). A one-day
    run asked 73 times, each a catalog query on PostgreSQL (on a pooled connection, pinged first)
    and on sqlite a new engine, connection and PRAGMA. Dagster's migrations add tables and nothing
    drops them while a storage is in use (`wipe` empties them), so a table found stays found; one
    not found is asked again, as a migration may add it."""

    def has_table(self, table_name: str) -> bool:
        known = self.__dict__.setdefault("_known_tables", set())
        if table_name in known:
            return True
        found = super().has_table(table_name)  # ty: ignore[unresolved-attribute]
        if found:
            known.add(table_name)
        return found


# Run files whose connection a storage keeps open besides the index's: a run's process writes one,
# a webserver or daemon reads and writes many, one open file each if unbounded.
KEPT_RUN_FILES = 4


class BatchingSqliteEventLogStorage(KnownTables, SharedIndexTransaction, SqliteEventLogStorage):
    """SqliteEventLogStorage whose `store_event_batch` writes a batch in one transaction per file,
    keeping a connection open to the index and its last `KEPT_RUN_FILES` run files."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, object] = OrderedDict()
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
        shared = self._shared_index_connection() if shard == INDEX_SHARD_NAME else None
        if shared is not None:  # inside `_index_transaction`: its connection, committed with it
            yield shared
            return
        # As the stock storage (a transaction per call), but each file's engine made once (creating
        # and disposing one took 0.7 of the 2.5 ms an unbatched event cost) and keeping one
        # connection (a second caller at once, none while the lock is held, would get its own).
        with self._db_lock:
            engine = self._engines.get(shard)
            if engine is None:
                import sqlalchemy
                from sqlalchemy.pool import QueuePool

                engine = sqlalchemy.create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=QueuePool,
                    pool_size=1,
                    max_overflow=-1,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
                keep_from_forked_children(engine)
                self._engines[shard] = engine
                self._close_least_recent_run_files()
            self._engines.move_to_end(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _close_least_recent_run_files(self) -> None:
        runs = [shard for shard in self._engines if shard != INDEX_SHARD_NAME]
        for shard in runs[: max(len(runs) - KEPT_RUN_FILES, 0)]:
            self._engines.pop(shard).dispose()  # its kept connection closed; the file stays

    def _close_kept_connections(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()

    def wipe(self) -> None:
        with self._db_lock:  # the files go: no connection of ours stays open on a deleted one
            self._close_kept_connections()
        super().wipe()

    def store_event(self, event: EventLogEntry) -> None:
        if not (event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS):
            super().store_event(event)
            return
        # As the stock storage stores a check's event (the run's file, then the index's copy and
        # the check's row), but the index's two writes in one transaction: they were two commits,
        # and with the run file's three, 8 ms of each check result (17 in every run).
        insert = self.prepare_insert_event(event)
        with self.run_connection(event.run_id) as conn:
            conn.execute(insert)
        # Nothing in the index's transaction opens a run's file: it holds the storage's lock.
        with self._index_transaction() as conn:
            event_id = conn.execute(insert).inserted_primary_key[0]
            self.store_asset_check_event(event, event_id)

    @staticmethod
    def _ids_just_inserted(conn, run_id: str, count: int) -> list[int]:
        """The ids of the `count` rows this transaction has just inserted, in order.

        From its first insert the transaction holds sqlite's write lock, so no other writer's row
        falls between ours: the ids run up to `last_insert_rowid()`. (SQLite does not promise
        RETURNING's order for a many-row insert; SQLAlchemy's `sort_by_parameter_order`, which
        would, inserts one row at a time on SQLite.)
        Checked, not assumed: a mismatch raises before the index's rows are committed (the run's
        file, written first as by `store_event`, keeps its own)."""
        last = int(conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one())
        first = last - count + 1
        table = SqlEventLogStorageTable
        ours = conn.execute(
            db.select(db.func.count())
            .select_from(table)
            .where(table.c.id.between(first, last), table.c.run_id == run_id)
        ).scalar_one()
        if ours != count:
            raise dg.DagsterInvariantViolationError(
                f"event log: expected ids {first}..{last} to be this batch's {count} rows, found {ours}"
            )
        return list(range(first, last + 1))

    def dispose(self) -> None:
        super().dispose()
        self._close_kept_connections()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not batchable(events):
            super().store_event_batch(events)  # one by one, as the stock storage does
            return
        # The rows store_event would insert, each file's in one executemany: an INSERT statement
        # built and executed per event cost the year's backfill (2,920 batched events) 0.25-1.12 s
        # (three pairs of runs: 9.26 / 9.61 / 10.24 s against 8.57 / 9.36 / 9.12 s).
        rows = [self._event_to_row(event) for event in events]
        insert = SqlEventLogStorageTable.insert()
        # As store_event: the run's own file first, then the cross-run index, then check rows.
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(insert, rows)
        with self._index_transaction() as conn:
            conn.execute(insert, rows)
            event_ids = self._ids_just_inserted(conn, events[0].run_id, len(rows))
            stored = list(zip(events, event_ids, strict=True))
            index_asset_events(self, conn, stored)
            # A run's planned checks: a row each, in this transaction (a commit each was 3.6 ms).
            store_check_events(self, stored)
