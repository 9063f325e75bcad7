"""The production instance's batching Postgres event log, on a real PostgreSQL: the rows Dagster's own
Postgres storage writes, with a run's plan in one transaction. The daily graph runs over real days
on both storages (a database each on one server) and every index table is compared."""

import dagster as dg
import pytest

from ml_assets.event_log_postgres import BatchingPostgresEventLogStorage
from ml_assets_tests.integration.servers import postgres_server
from ml_assets_tests.test_event_log import (
    TABLES,
    assert_batched,
    assert_same_rows,
    record_calls,
    run_daily_range,
    stored_rows,
)

STORAGES = {
    "stock": ("dagster_postgres.event_log", "PostgresEventLogStorage"),
    "batching": ("ml_assets.event_log_postgres", "BatchingPostgresEventLogStorage"),
}


def postgres_instance(server: dict, database: str, name: str):
    module, cls = STORAGES[name]
    postgres_db = {
        "hostname": server["host"],
        "port": server["port"],
        "username": server["user"],
        "password": "",
        "db_name": database,
        "scheme": "postgresql+psycopg2",
    }
    storage = {"module": module, "class": cls, "config": {"postgres_db": postgres_db}}
    return dg.instance_for_test(overrides={"event_log_storage": storage})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One PostgreSQL for the module: a database for each storage and one for the failure test."""
    with postgres_server(tmp_path_factory.mktemp("pg") / "pg.log", (*STORAGES, "fail")) as server:
        yield server


@pytest.fixture(scope="module")
def both_storages(server, tmp_path_factory, landed_month):
    """The same run on Dagster's stock Postgres storage and on ours, batching on (as the image sets)."""
    root = tmp_path_factory.mktemp("event_log_postgres")
    rows = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
        one_by_one, batches = record_calls(patch, BatchingPostgresEventLogStorage)
        for name in STORAGES:
            with postgres_instance(server, name, name) as instance:
                assert type(instance.event_log_storage).__name__ == STORAGES[name][1]
                run = run_daily_range(instance, root / name, landed_month)
                rows[name] = stored_rows(instance, run)
    return {**rows, "one_by_one": one_by_one, "batches": batches}


def test_the_plan_is_one_batch_and_skips_the_one_by_one_path(both_storages):
    assert_batched(both_storages["one_by_one"], both_storages["batches"])


@pytest.mark.parametrize("table", TABLES)
def test_every_row_equals_the_stock_storages(both_storages, table):
    assert_same_rows(both_storages["stock"], both_storages["batching"], table)


def test_the_plan_is_one_row_per_asset_and_day(both_storages):
    """The plan's rows: one per asset and day, none lost or doubled by the one-statement insert."""
    events = both_storages["batching"]["index_events"]
    planned = [e for e in events if e[1] == "ASSET_MATERIALIZATION_PLANNED"]
    assert len(planned) == 20
    assert len({(e[2], e[3]) for e in planned}) == 20  # one per asset and day, none mixed up


def test_a_failing_batch_leaves_no_rows(server):
    """The events and their index rows go in one transaction: a failure part-way stores none."""
    from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent

    def planned(day: str):
        event = DagsterEvent.build_asset_materialization_planned_event(
            "job", "step", AssetMaterializationPlannedData(dg.AssetKey("a"), partition=day)
        )
        return dg.EventLogEntry(
            error_info=None, level=10, user_message="", run_id="r", timestamp=0.0, dagster_event=event
        )

    with postgres_instance(server, "fail", "batching") as instance:
        storage = instance.event_log_storage

        def broken(conn, event, event_id):
            raise RuntimeError("asset table unavailable")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(storage, "_store_asset_event", broken)
            with pytest.raises(RuntimeError, match="asset table unavailable"):
                storage.store_event_batch([planned("2013-01-01"), planned("2013-01-02")])
        assert storage.get_logs_for_run("r") == []
        storage.store_event_batch([planned("2013-01-01"), planned("2013-01-02")])
        assert len(storage.get_logs_for_run("r")) == 2
