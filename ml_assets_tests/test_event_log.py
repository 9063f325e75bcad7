"""The local instance's batching sqlite event log: the rows Dagster's own sqlite storage writes, in
one transaction per batch. The daily graph runs over real days on both storages and every index
table is compared."""

from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from ml_assets.definitions import defs
from ml_assets.event_log import (
    KEPT_RUN_FILES,
    BatchingSqliteEventLogStorage,
    asset_entry_updates,
    default_base_dir,
)
from ml_assets.partitions import landing_days
from ml_assets_tests.conftest import make_resources, materialize_range

DAYS = [f"2013-01-{d:02d}" for d in range(1, 6)]
DAILY = {"raw_data", "validated_data", "quarantine", "features"}
BATCHED = {"ASSET_MATERIALIZATION", "ASSET_MATERIALIZATION_PLANNED", "ASSET_CHECK_EVALUATION_PLANNED"}


def batching_instance(base_dir: Path):
    storage = {"module": "ml_assets.event_log", "class": "BatchingSqliteEventLogStorage"}
    return dg.instance_for_test(
        overrides={"event_log_storage": {**storage, "config": {"base_dir": str(base_dir)}}}
    )


def kind(event) -> str | None:
    return event.dagster_event_type.value if event.dagster_event_type else None


def run_daily_range(instance, root: Path, landing: Path) -> str:
    """raw_data -> validated_data/quarantine -> features over DAYS as one run, with their checks."""
    definitions = defs()
    instance.add_dynamic_partitions(landing_days.name, DAYS)
    result = materialize_range(
        [*definitions.assets, *definitions.asset_checks],
        DAYS,
        selection=dg.AssetSelection.assets(*DAILY),
        instance=instance,
        resources=make_resources(root, landing),
    )
    assert result.success
    return result.run_id


def stored_rows(instance, run_id: str) -> dict:
    """Every row the run left in the index and its own file, run id and event ids named, not valued."""
    storage = instance.event_log_storage

    def rows(conn, sql: str) -> list[tuple]:
        return [tuple(r) for r in conn.execute(sa.text(sql)).fetchall()]

    with storage.index_connection() as conn:
        ids = {r[0]: n for n, r in enumerate(rows(conn, "select id from event_logs order by id"))}
        index_events = rows(
            conn, "select id, dagster_event_type, asset_key, partition, step_key from event_logs"
        )
        tags = rows(conn, "select event_id, asset_key, key, value from asset_event_tags")
        assets = rows(conn, "select asset_key, last_materialization, last_run_id from asset_keys")
        check_rows = rows(
            conn,
            "select asset_key, check_name, partition, run_id, execution_status, "
            "evaluation_event_storage_id from asset_check_executions",
        )
    with storage.run_connection(run_id) as conn:
        run_events = rows(
            conn, "select dagster_event_type, asset_key, partition, step_key from event_logs order by id"
        )

    def named(value):
        return value.replace(run_id, "<run>") if isinstance(value, str) else value

    last = {}
    for key, record, last_run in assets:
        event = dg.deserialize_value(record, dg.EventLogRecord) if record else None
        last[key] = (
            ids.get(event.storage_id) if event else None,
            event.asset_materialization.partition if event else None,
            named(last_run),
        )
    return {
        "index_events": sorted((ids[i], *r) for i, *r in index_events),
        "tags": Counter((ids[e], a, k, named(v)) for e, a, k, v in tags),
        "assets": last,
        # Each check row names the index event of its latest evaluation (or its plan).
        "checks": Counter((*(named(v) for v in r[:-1]), ids.get(r[-1])) for r in check_rows),
        "run_events": run_events,
    }


@pytest.fixture(scope="module")
def both_storages(tmp_path_factory, landed_month):
    """The same run on Dagster's stock sqlite storage and on ours with batching on."""
    root = tmp_path_factory.mktemp("event_log")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
        with dg.instance_for_test() as stock:
            stock_run = run_daily_range(stock, root / "stock", landed_month)
            stock_rows = stored_rows(stock, stock_run)
        one_by_one, batches = record_calls(patch, BatchingSqliteEventLogStorage)
        with batching_instance(root / "batching-history") as batching:
            assert type(batching.event_log_storage) is BatchingSqliteEventLogStorage
            batching_run = run_daily_range(batching, root / "batching", landed_month)
            batching_rows = stored_rows(batching, batching_run)
    return {"stock": stock_rows, "batching": batching_rows, "one_by_one": one_by_one, "batches": batches}


def record_calls(patch: pytest.MonkeyPatch, storage: type) -> tuple[list, list]:
    """The kinds of the events `storage` stores one by one, and of each batch it is handed."""
    one_by_one: list = []
    batches: list = []
    store_event, store_batch = storage.store_event, storage.store_event_batch
    patch.setattr(storage, "store_event", lambda self, e: one_by_one.append(kind(e)) or store_event(self, e))
    patch.setattr(
        storage,
        "store_event_batch",
        lambda self, events: batches.append([kind(e) for e in events]) or store_batch(self, events),
    )
    return one_by_one, batches


def assert_batched(one_by_one: list, batches: list) -> None:
    """The run's plan is one batch (4 assets x 5 days and the checks); each output's 5 days another;
    none of those went through store_event (on sqlite 6 ms an event; on Postgres a connection each)."""
    planned = [b for b in batches if "ASSET_MATERIALIZATION_PLANNED" in b]
    assert [b.count("ASSET_MATERIALIZATION_PLANNED") for b in planned] == [20]
    assert planned[0].count("ASSET_CHECK_EVALUATION_PLANNED") >= 1
    outputs = [b for b in batches if set(b) == {"ASSET_MATERIALIZATION"}]
    assert sorted(len(b) for b in outputs) == [5, 5, 5, 5]
    assert not set(one_by_one) & BATCHED


TABLES = ["index_events", "tags", "assets", "checks", "run_events"]


def assert_same_rows(stock: dict, batching: dict, table: str) -> None:
    assert stock[table], f"the stock storage wrote no {table}"
    assert batching[table] == stock[table]


def test_batches_skip_the_one_by_one_path(both_storages):
    assert_batched(both_storages["one_by_one"], both_storages["batches"])


@pytest.mark.parametrize("table", TABLES)
def test_every_row_equals_the_stock_storages(both_storages, table):
    assert_same_rows(both_storages["stock"], both_storages["batching"], table)


def test_the_asset_table_names_each_assets_last_materialization(both_storages):
    assets = both_storages["batching"]["assets"]
    assert set(assets) >= {f'["{a}"]' for a in DAILY}
    for key in DAILY:
        position, partition, last_run = assets[f'["{key}"]']
        assert partition in DAYS
        assert last_run == "<run>"
        # The newest of that asset's materializations in the index.
        events = both_storages["batching"]["index_events"]
        newest = max(e[0] for e in events if e[2] == f'["{key}"]' and e[1] == "ASSET_MATERIALIZATION")
        assert position == newest


def planned_event(run_id: str, day: str):
    """A planned materialization of asset `a` for `day`, as a run's plan holds one per partition."""
    from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent

    event = DagsterEvent.build_asset_materialization_planned_event(
        "job", "step", AssetMaterializationPlannedData(dg.AssetKey("a"), partition=day)
    )
    return dg.EventLogEntry(
        error_info=None, level=10, user_message="", run_id=run_id, timestamp=0.0, dagster_event=event
    )


def planned_check_event(run_id: str, name: str):
    """A planned evaluation of check `name` on asset `a`, as a run's plan holds one per check."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
    from dagster._core.events import DagsterEvent

    event = DagsterEvent(
        event_type_value=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value,
        job_name="job",
        event_specific_data=AssetCheckEvaluationPlanned(asset_key=dg.AssetKey("a"), check_name=name),
    )
    return dg.EventLogEntry(
        error_info=None, level=10, user_message="", run_id=run_id, timestamp=0.0, dagster_event=event
    )


def check_result_event(run_id: str, passed: bool):
    """An evaluation of check `rows` on asset `a`, as a step yields one."""
    from dagster._core.events import DagsterEvent

    evaluation = dg.AssetCheckEvaluation(asset_key=dg.AssetKey("a"), check_name="rows", passed=passed)
    event = DagsterEvent(
        event_type_value=dg.DagsterEventType.ASSET_CHECK_EVALUATION.value,
        job_name="job",
        event_specific_data=evaluation,
    )
    return dg.EventLogEntry(
        error_info=None, level=10, user_message="", run_id=run_id, timestamp=1.0, dagster_event=event
    )


def index_counts(storage: BatchingSqliteEventLogStorage) -> tuple[int, int]:
    with storage.index_connection() as conn:
        events = conn.execute(sa.text("select count(*) from event_logs")).scalar_one()
        checks = conn.execute(sa.text("select count(*) from asset_check_executions")).scalar_one()
    return events, checks


def test_a_check_results_index_rows_go_in_one_commit(tmp_path, monkeypatch):
    """A check result is stored as the stock storage stores it (the run's file; the index's copy of
    the event; the check's row, naming that copy), but the index's two writes in one transaction:
    one commit there, not two, and a failure writing the check's row leaves no copy either."""
    storage = BatchingSqliteEventLogStorage(str(tmp_path))
    storage.store_event(check_result_event("r", passed=True))  # the first result makes the row
    commits: list[str] = []
    for shard, engine in storage._engines.items():
        sa.event.listen(engine, "commit", lambda conn, shard=shard: commits.append(shard))
    storage.store_event(check_result_event("r", passed=False))  # the next one updates it
    assert commits == ["r", "index"]
    history = storage.get_asset_check_execution_history(dg.AssetCheckKey(dg.AssetKey("a"), "rows"), limit=5)
    assert [(h.run_id, h.status.value) for h in history] == [("r", "FAILED")]
    with storage.index_connection() as conn:
        named = conn.execute(sa.text("select evaluation_event_storage_id from asset_check_executions"))
        newest = conn.execute(sa.text("select max(id) from event_logs")).scalar_one()
        assert named.scalar_one() == newest  # the row names the index's copy of the latest result
    assert index_counts(storage) == (2, 1)

    def broken(self, event, event_id):
        raise RuntimeError("the check's row could not be written")

    monkeypatch.setattr(BatchingSqliteEventLogStorage, "store_asset_check_event", broken)
    with pytest.raises(RuntimeError, match="could not be written"):
        storage.store_event(check_result_event("r", passed=True))
    assert index_counts(storage) == (2, 1)  # neither the copy nor the row
    assert len(storage.get_logs_for_run("r")) == 3  # the run's own file keeps it, as before
    storage.dispose()


def test_a_plans_events_and_check_rows_are_one_commit_in_the_index(tmp_path):
    """A run's plan (its assets' days and its checks) is one batch: the index's copies, the asset
    rows and a check row per planned check go in one transaction (a commit per check before)."""
    storage = BatchingSqliteEventLogStorage(str(tmp_path))
    storage.store_event(planned_event("r", "2013-01-01"))  # makes both files' engines
    commits: list[str] = []
    for shard, engine in storage._engines.items():
        sa.event.listen(engine, "commit", lambda conn, shard=shard: commits.append(shard))
    plan = [planned_event("r", "2013-01-02"), *(planned_check_event("r", f"check_{n}") for n in range(3))]
    storage.store_event_batch(plan)
    assert commits == ["r", "index"]
    assert index_counts(storage) == (5, 3)
    storage.dispose()


def test_an_index_transaction_inside_another_is_the_same_one(tmp_path):
    """Nested, the inner scope hands out the outer's connection and leaves it open: the writes
    after it still share it (on sqlite a second connection would wait on the storage's lock)."""
    storage = BatchingSqliteEventLogStorage(str(tmp_path))
    with storage._index_transaction() as outer:
        with storage._index_transaction() as inner:
            assert inner is outer
        assert storage._shared_index_connection() is outer  # checked before a call that would wait
        with storage.index_connection() as after:
            assert after is outer
    with storage.index_connection() as later:
        assert later is not outer
    storage.dispose()


def test_a_key_with_mixed_event_types_keeps_every_update():
    from dagster._core.events import DagsterEvent, StepMaterializationData

    def entry(kind: str):
        if kind == "planned":
            return planned_event("r", "2013-01-01")
        event = DagsterEvent(
            event_type_value=dg.DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name="job",
            event_specific_data=StepMaterializationData(dg.AssetMaterialization(dg.AssetKey("a"))),
        )
        return dg.EventLogEntry(
            error_info=None, level=10, user_message="", run_id="r", timestamp=0.0, dagster_event=event
        )

    one_type = [(entry("planned"), 1), (entry("planned"), 2)]
    assert [i for _, i in asset_entry_updates(one_type)] == [2]
    mixed = [(entry("planned"), 1), (entry("materialized"), 2), (entry("materialized"), 3)]
    assert [i for _, i in asset_entry_updates(mixed)] == [1, 2, 3]


def test_default_base_dir_is_dagsters_own(monkeypatch, tmp_path):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert default_base_dir() == str(tmp_path / "history" / "runs")
    monkeypatch.delenv("DAGSTER_HOME")
    with pytest.raises(dg.DagsterInvariantViolationError, match="DAGSTER_HOME"):
        default_base_dir()


def test_each_file_gets_one_engine_for_the_storages_life(monkeypatch, tmp_path):
    made: list[str] = []
    create_engine = sa.create_engine
    monkeypatch.setattr(
        sa, "create_engine", lambda url, **kw: made.append(str(url)) or create_engine(url, **kw)
    )
    storage = BatchingSqliteEventLogStorage(str(tmp_path))
    for n in range(20):
        storage.store_event(
            dg.EventLogEntry(
                error_info=None,
                level=20,
                user_message=f"m{n}",
                run_id="r",
                timestamp=float(n),
                dagster_event=None,
            )
        )
    assert [e.user_message for e in storage.get_logs_for_run("r")] == [f"m{n}" for n in range(20)]
    # 20 writes and a read of the run's file (and the index's): one engine each; the stock
    # storage makes one per call.
    assert storage.conn_string_for_shard("r") in made
    assert Counter(made).most_common(1)[0][1] == 1
    storage.dispose()
    assert not storage._engines


def log_entry(run_id: str, message: str):
    return dg.EventLogEntry(
        error_info=None, level=20, user_message=message, run_id=run_id, timestamp=1.0, dagster_event=None
    )


def count_connects(storage: BatchingSqliteEventLogStorage) -> Counter:
    """New SQLite connections from here on, by file, for the files `storage` has engines for."""
    opened: Counter = Counter()
    for shard, engine in storage._engines.items():
        sa.event.listen(engine, "connect", lambda *_, shard=shard: opened.update([shard]))
    return opened


def test_the_index_and_a_run_file_keep_their_connection_between_writes(tmp_path):
    """The stock storage connects for every call, and closing the last connection to a WAL file
    checkpoints it and deletes its log; ours connects to each file once."""
    storage = BatchingSqliteEventLogStorage(str(tmp_path))
    storage.store_event(check_result_event("r", passed=True))  # the run's file and the index
    opened = count_connects(storage)
    for n in range(5):
        storage.store_event(check_result_event("r", passed=bool(n % 2)))
        storage.store_event(log_entry("r", f"m{n}"))
    assert len(storage.get_logs_for_run("r")) == 11
    assert opened == Counter()  # no new connection to either file
    storage.dispose()


def test_a_kept_connection_serves_the_storages_other_threads(tmp_path):
    """The webserver reads and writes from several threads: a connection opened in one is used in
    another (SQLAlchemy opens file databases with check_same_thread off)."""
    import threading

    storage = BatchingSqliteEventLogStorage(str(tmp_path))
    storage.store_event(log_entry("r", "main"))
    seen: list = []

    def other() -> None:
        storage.store_event(log_entry("r", "thread"))
        seen.extend(e.user_message for e in storage.get_logs_for_run("r"))

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=30)
    assert seen == ["main", "thread"]
    storage.dispose()


def test_only_the_last_few_run_files_keep_a_connection(tmp_path):
    storage = BatchingSqliteEventLogStorage(str(tmp_path))
    runs = [f"run{n}" for n in range(KEPT_RUN_FILES + 3)]
    for run in runs:
        storage.store_event(log_entry(run, "hello"))
    assert list(storage._engines) == ["index", *runs[-KEPT_RUN_FILES:]]  # the index stays
    assert [len(storage.get_logs_for_run(run)) for run in runs] == [1] * len(runs)  # nothing lost
    storage.dispose()


def _write_in_child(storage: BatchingSqliteEventLogStorage) -> None:
    if any(engine.pool.checkedin() for engine in storage._engines.values()):
        raise SystemExit(3)  # the parent's connections, inherited: set aside at the fork, or used here
    storage.store_event(log_entry("child", "from the child"))
    storage.store_event(check_result_event("parent", passed=True))  # the parent's run file and index


def test_a_forked_child_leaves_the_parents_connections_alone(tmp_path):
    """A forked child (raw_data's parsing workers) sets the inherited connections aside, never using
    or closing them; writing, it connects on its own; the parent goes on with its own."""
    import multiprocessing

    storage = BatchingSqliteEventLogStorage(str(tmp_path))
    storage.store_event(log_entry("parent", "before"))
    opened = count_connects(storage)
    child = multiprocessing.get_context("fork").Process(target=_write_in_child, args=(storage,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    storage.store_event(log_entry("parent", "after"))
    assert [e.dagster_event_type for e in storage.get_logs_for_run("parent")][1:] == [
        dg.DagsterEventType.ASSET_CHECK_EVALUATION,
        None,
    ]  # before, the child's check result, after
    assert [e.user_message for e in storage.get_logs_for_run("child")] == ["from the child"]
    assert opened["parent"] == 0  # the parent's kept connection, still working
    storage.dispose()


def test_wiping_closes_the_kept_connections_before_the_files_go(tmp_path):
    storage = BatchingSqliteEventLogStorage(str(tmp_path))
    storage.store_event(log_entry("r", "before"))
    storage.wipe()
    assert storage.get_logs_for_run("r") == []
    storage.store_event(log_entry("r", "after"))
    assert [e.user_message for e in storage.get_logs_for_run("r")] == ["after"]
    assert (tmp_path / "r.db").exists()
    storage.dispose()


def test_a_batchs_ids_are_checked_to_be_its_own_rows(tmp_path):
    """A batch's event ids are derived from the last insert (the write lock keeps them consecutive):
    a range holding another run's row raises inside the index's transaction, before its rows are committed."""
    storage = BatchingSqliteEventLogStorage(str(tmp_path))
    table = sa.table("event_logs", sa.column("id"), sa.column("run_id"), sa.column("event"))

    def insert(conn, run_id: str, count: int) -> None:
        conn.execute(table.insert(), [{"run_id": run_id, "event": "{}"} for _ in range(count)])

    with storage.index_transaction() as conn:
        insert(conn, "a", 3)
        insert(conn, "b", 2)
        assert storage._ids_just_inserted(conn, "b", 2) == [4, 5]
        with pytest.raises(dg.DagsterInvariantViolationError, match=r"ids 3\.\.5 .* 3 rows, found 2"):
            storage._ids_just_inserted(conn, "b", 3)
    storage.dispose()


def assert_a_found_table_is_asked_for_once(storage, catalog_query: str) -> None:
    """`has_table` queries the database once for a table it found (Dagster asks before each check
    row, dynamic-partition lookup and event's tags); every time for one it did not, until it exists.
    `catalog_query`: a fragment of the statements the storage's dialect asks with."""
    asked: list[str] = []

    def record(conn, cursor, statement, parameters, *_):
        if catalog_query in statement:
            asked.append(f"{statement} {parameters}")

    def asks(table: str) -> int:
        return sum(table in query for query in asked)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        assert [storage.has_table("dynamic_partitions") for _ in range(3)] == [True, True, True]
        assert asks("dynamic_partitions") == 1
        assert [storage.has_table("added_later") for _ in range(2)] == [False, False]
        missing = asks("added_later")
        assert missing >= 2  # asked each time
        with storage.index_connection() as conn:  # a migration adding a table the process asked about
            conn.execute(sa.text("CREATE TABLE added_later (id INTEGER)"))
        assert [storage.has_table("added_later") for _ in range(3)] == [True, True, True]
        assert asks("added_later") == missing + 1
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


def test_a_found_table_is_asked_for_once(tmp_path):
    with batching_instance(tmp_path) as instance:
        assert_a_found_table_is_asked_for_once(instance.event_log_storage, "PRAGMA")
