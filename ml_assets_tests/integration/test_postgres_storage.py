"""The production instance's Postgres storages, on a real PostgreSQL. The event log: the rows Dagster's
own Postgres storage writes, with a run's plan in one transaction; the daily graph runs over real
days on both (a database each on one server) and every index table is compared. All three: one
connection kept between calls, replaced when the server dropped it, never used by a forked child."""

import multiprocessing
import time

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy

from ml_assets.assets.metadata import recorded_partition_facts
from ml_assets.definitions import defs
from ml_assets.event_log import index_asset_events
from ml_assets.partitions import landing_days
from ml_assets.postgres_storage import BatchingPostgresEventLogStorage
from ml_assets_tests.conftest import make_resources
from ml_assets_tests.integration.servers import postgres_server
from ml_assets_tests.test_event_log import (
    DAYS,
    TABLES,
    assert_a_found_table_is_asked_for_once,
    assert_batched,
    assert_same_rows,
    check_result_event,
    planned_check_event,
    planned_event,
    record_calls,
    run_daily_range,
    stored_rows,
)

# Each instance's run, event log and schedule storage classes: Dagster's, and the production yaml's.
STORAGES = {
    "stock": {
        "run_storage": ("dagster_postgres.run_storage", "PostgresRunStorage"),
        "event_log_storage": ("dagster_postgres.event_log", "PostgresEventLogStorage"),
        "schedule_storage": ("dagster_postgres.schedule_storage", "PostgresScheduleStorage"),
    },
    "ours": {
        "run_storage": ("ml_assets.postgres_storage", "OneConnectionPostgresRunStorage"),
        "event_log_storage": ("ml_assets.postgres_storage", "BatchingPostgresEventLogStorage"),
        "schedule_storage": ("ml_assets.postgres_storage", "OneConnectionPostgresScheduleStorage"),
    },
}
CONNECTION_TESTS = ("kept_stock", "kept_ours", "fork", "dropped")


def postgres_instance(server: dict, database: str, name: str):
    postgres_db = {
        "hostname": server["host"],
        "port": server["port"],
        "username": server["user"],
        "password": "",
        "db_name": database,
        "scheme": "postgresql+psycopg2",
    }
    storages = {
        key: {"module": module, "class": cls, "config": {"postgres_db": postgres_db}}
        for key, (module, cls) in STORAGES[name].items()
    }
    return dg.instance_for_test(overrides=storages)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One PostgreSQL for the module: a database for each storage and each test of its own."""
    databases = (*STORAGES, "fail", "pages", "tables", "facts", *CONNECTION_TESTS)
    with postgres_server(tmp_path_factory.mktemp("pg") / "pg.log", databases) as server:
        yield server


@pytest.fixture(scope="module")
def both_storages(server, tmp_path_factory, landed_month):
    """The same run on Dagster's stock Postgres storage and on ours, batching on (as the image sets)."""
    root = tmp_path_factory.mktemp("postgres_storage")
    rows = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
        one_by_one, batches = record_calls(patch, BatchingPostgresEventLogStorage)
        for name in STORAGES:
            with postgres_instance(server, name, name) as instance:
                assert type(instance.event_log_storage).__name__ == STORAGES[name]["event_log_storage"][1]
                run = run_daily_range(instance, root / name, landed_month)
                rows[name] = stored_rows(instance, run)
    return {**rows, "one_by_one": one_by_one, "batches": batches}


def test_the_plan_is_one_batch_and_skips_the_one_by_one_path(both_storages):
    assert_batched(both_storages["one_by_one"], both_storages["batches"])


@pytest.mark.parametrize("table", TABLES)
def test_every_row_equals_the_stock_storages(both_storages, table):
    assert_same_rows(both_storages["stock"], both_storages["ours"], table)


def test_the_plan_is_one_row_per_asset_and_day(both_storages):
    """The plan's rows: one per asset and day, none lost or doubled by the one-statement insert."""
    events = both_storages["ours"]["index_events"]
    planned = [e for e in events if e[1] == "ASSET_MATERIALIZATION_PLANNED"]
    assert len(planned) == 20
    assert len({(e[2], e[3]) for e in planned}) == 20  # one per asset and day, none mixed up


def test_a_plan_longer_than_a_page_keeps_each_events_id(server):
    """A year's plan (1,460 events) goes to PostgreSQL in pages of 1,000 rows: each event is paired
    with its own row's id across pages (the index rows are written from these pairs), in order."""
    from ml_assets import postgres_storage

    days = [f"day-{n:04d}" for n in range(1200)]
    paired: list[tuple[str, int]] = []

    def recording(storage, conn, stored):
        paired.extend((event.get_dagster_event().partition, event_id) for event, event_id in stored)
        return index_asset_events(storage, conn, stored)

    with postgres_instance(server, "pages", "ours") as instance, pytest.MonkeyPatch.context() as patch:
        patch.setattr(postgres_storage, "index_asset_events", recording)
        storage = instance.event_log_storage
        storage.store_event_batch([planned_event("big", day) for day in days])
        records = storage.get_records_for_run("big", limit=2000).records
    stored = sorted((r.storage_id, r.event_log_entry.get_dagster_event().partition) for r in records)
    assert [partition for _, partition in stored] == days
    assert paired == [(partition, storage_id) for storage_id, partition in stored]


def test_a_failing_batch_leaves_no_rows(server):
    """The events and their index rows go in one transaction: a failure part-way stores none."""
    plan = [planned_event("r", "2013-01-01"), planned_event("r", "2013-01-02")]
    with postgres_instance(server, "fail", "ours") as instance:
        storage = instance.event_log_storage

        def broken(conn, event, event_id):
            raise RuntimeError("asset table unavailable")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(storage, "_store_asset_event", broken)
            with pytest.raises(RuntimeError, match="asset table unavailable"):
                storage.store_event_batch(plan)
        assert storage.get_logs_for_run("r") == []
        storage.store_event_batch(plan)
        assert len(storage.get_logs_for_run("r")) == 2


def test_a_check_results_rows_and_a_plans_check_rows_each_go_in_one_transaction(server):
    """A check result's event and its check row are one transaction (three autocommits before), as
    are a plan's events and its checks' rows: a failure writing a check row stores neither."""
    key = dg.AssetCheckKey(dg.AssetKey("a"), "rows")
    plan = [planned_event("p", "2013-01-01"), planned_check_event("p", "rows")]
    with postgres_instance(server, "fail", "ours") as instance:
        storage = instance.event_log_storage

        def broken(event, event_id):
            raise RuntimeError("check table unavailable")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(storage, "store_asset_check_event", broken)
            with pytest.raises(RuntimeError, match="check table unavailable"):
                storage.store_event(check_result_event("c", passed=True))
            with pytest.raises(RuntimeError, match="check table unavailable"):
                storage.store_event_batch(
                    [planned_event("p", "2013-01-01"), planned_check_event("p", "rows")]
                )
        assert storage.get_logs_for_run("c") == []
        assert storage.get_logs_for_run("p") == []
        assert storage.get_asset_check_execution_history(key, limit=5) == []
        storage.store_event_batch(plan)
        storage.store_event(check_result_event("c", passed=False))
        history = storage.get_asset_check_execution_history(key, limit=5)
        assert [(h.run_id, h.status.value) for h in history] == [("c", "FAILED"), ("p", "PLANNED")]
        assert len(storage.get_logs_for_run("c")) == 1


def backend(storage) -> int:
    """The server process behind the connection `storage` uses for its next call."""
    # The event log's `_connect` is private; the run and schedule storages' `connect` is not.
    connect = storage._connect if hasattr(storage, "_connect") else storage.connect
    with connect() as conn:
        return conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar()


def storages_of(instance) -> list:
    return [instance.run_storage, instance.event_log_storage, instance.schedule_storage]


def some_writes(instance, day: str) -> None:
    """A write to each storage: a run and a cursor, an event and a dynamic partition, a sensor tick."""
    from dagster._core.scheduler.instigation import InstigatorType, TickData, TickStatus

    run = instance.create_run_for_job(dg.GraphDefinition("job").to_job(), run_id=None)
    instance.run_storage.set_cursor_values({f"cursor-{day}": day})
    instance.report_engine_event("kept?", run)
    instance.add_dynamic_partitions("days", [day])
    tick = TickData("origin", "landing_sensor", InstigatorType.SENSOR, TickStatus.SKIPPED, time.time())
    instance.schedule_storage.create_tick(tick)


@pytest.mark.parametrize("name", list(STORAGES))
def test_each_storage_keeps_one_connection_between_calls(server, name):
    """Ours: the same server session before and after writes to every storage. Dagster's own
    connects for every call (the control: its sessions differ)."""
    with postgres_instance(server, f"kept_{name}", name) as instance:
        before = [backend(storage) for storage in storages_of(instance)]
        some_writes(instance, "2013-01-01")
        after = [backend(storage) for storage in storages_of(instance)]
        assert instance.get_dynamic_partitions("days") == ["2013-01-01"]
        assert len(instance.schedule_storage.get_ticks("origin", None)) == 1
    if name == "ours":
        assert after == before
    else:
        assert all(a != b for a, b in zip(after, before, strict=True))


def _write_in_child(storage, sessions) -> None:
    """A forked child writing through the storage it inherited, as `raw_data`'s parsing workers
    inherit the step's instance."""
    sessions.put(backend(storage))
    storage.store_event(planned_event("child", "2013-01-02"))


def test_a_forked_child_connects_on_its_own_and_leaves_the_parents_session(server):
    with postgres_instance(server, "fork", "ours") as instance:
        storage = instance.event_log_storage
        storage.store_event(planned_event("parent", "2013-01-01"))
        parent = backend(storage)
        context = multiprocessing.get_context("fork")
        sessions = context.Queue()
        child = context.Process(target=_write_in_child, args=(storage, sessions))
        child.start()
        child.join(60)
        assert child.exitcode == 0
        assert sessions.get(timeout=5) != parent  # its own connection, not the parent's
        assert backend(storage) == parent  # and the parent's session outlived the child
        assert [len(storage.get_logs_for_run(run)) for run in ("parent", "child")] == [1, 1]


def test_a_connection_the_server_dropped_is_replaced(server):
    """The kept connection is pinged before use: a session the server ended while it sat idle (a
    restart, an idle timeout) costs a reconnect, not a failed write."""
    import psycopg2

    with postgres_instance(server, "dropped", "ours") as instance:
        storage = instance.event_log_storage
        dropped = backend(storage)
        admin = psycopg2.connect(dbname="postgres", **server)
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (dropped,))
            for _ in range(100):  # the session ends shortly after the signal
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (dropped,))
                if cursor.fetchone()[0] == 0:
                    break
                time.sleep(0.05)
        admin.close()
        storage.store_event(planned_event("r", "2013-01-01"))
        assert len(storage.get_logs_for_run("r")) == 1
        assert backend(storage) != dropped


def test_a_found_table_is_asked_for_once(server):
    """A one-day run asked 73 times, each a catalog query (after a ping of the kept connection when
    it is checked out)."""
    with postgres_instance(server, "tables", "ours") as instance:
        assert_a_found_table_is_asked_for_once(instance.event_log_storage, "pg_class")


def test_a_day_after_a_range_reads_the_ranges_facts(server, tmp_path, landed_month):
    """The row-count check of the day after a range run, on PostgreSQL: each earlier day's latest
    event found by its partition, its row count in the range's per-day table."""
    with postgres_instance(server, "facts", "ours") as instance:
        run_daily_range(instance, tmp_path, landed_month)
        day = "2013-01-06"
        instance.add_dynamic_partitions(landing_days.name, [day])
        definitions = defs()
        result = dg.materialize(
            [*definitions.assets, *definitions.asset_checks],
            selection=["raw_data"],
            partition_key=day,
            instance=instance,
            resources=make_resources(tmp_path, landed_month),
        )
        (band,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "row_count_in_band"]
        assert band.passed
        assert band.metadata["earlier_days_read"].value == len(DAYS)
        recorded = recorded_partition_facts(instance, "raw_data", [*DAYS, day])
        assert {d: facts["dagster/row_count"] for d, facts in recorded.items()} == {
            d: len(pd.read_csv(landed_month / f"flights_{d}.csv")) for d in [*DAYS, day]
        }
