"""The production deployment on real components, all on loopback: a PostgreSQL instance, S3 (moto's
server), an MLflow tracking server with a Postgres store and S3 artifacts, and Dagster as three
processes (code server, webserver, daemon) with `ML_ASSETS_ENV=production`."""

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from ml_assets.demo import seed
from ml_assets_tests.conftest import registry_client
from ml_assets_tests.integration.servers import (
    REPO,
    S3_CREDENTIALS,
    GraphQL,
    free_port,
    image_env,
    postgres_server,
    process_group,
    production_postgres_env,
    s3_client,
    wait_for_http,
)

pytestmark = pytest.mark.integration
DAYS = 14
START = "2013-07-01"
BUCKET = "ml-assets"
MLFLOW_BUCKET = "ml-assets-mlflow"
LOG_BUCKET = "ml-assets-logs"
EXECUTABLE_ASSETS = [
    "raw_data",
    "validated_data",
    "quarantine",
    "features",
    "trained_model",
    "production_model",
]
BIN = Path(sys.executable).parent


def land(client, source: Path, names: list[str]) -> None:
    for name in names:
        client.put_object(Bucket=BUCKET, Key=f"landing/{name}", Body=(source / name).read_bytes())


@contextlib.contextmanager
def dagster_services(env: dict, root: Path, cwd: Path):
    """Webserver and daemon, loading the code location from its gRPC server."""
    port = free_port()
    workspace = str(REPO / "deploy" / "workspace.production.yaml")
    web_log, daemon_log = root / "webserver.log", root / "daemon.log"
    webserver = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", workspace]
    with (
        process_group(webserver, env, web_log, cwd=cwd) as web,
        process_group([str(BIN / "dagster-daemon"), "run", "-w", workspace], env, daemon_log, cwd=cwd),
    ):
        wait_for_http(f"http://127.0.0.1:{port}/server_info", web, web_log)
        yield GraphQL(f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, s3_endpoint):
    root = tmp_path_factory.mktemp("production")
    cwd = root / "cwd"  # the processes' working directory: must stay empty (no local data)
    cwd.mkdir()
    client = s3_client(s3_endpoint)
    for bucket in (BUCKET, MLFLOW_BUCKET, LOG_BUCKET):
        client.create_bucket(Bucket=bucket)
    demo = root / "demo"
    seed(demo, START, DAYS + 1)
    days = sorted(p.name for p in demo.glob("flights_*.csv"))
    weather = sorted(p.name for p in demo.glob("weather_*.csv"))  # each day's lands before its flights
    land(client, demo, ["planes.csv", *weather, *days[:DAYS]])

    with postgres_server(root / "postgres.log", ("dagster", "mlflow")) as pg:
        home = root / "home"
        home.mkdir()
        shutil.copy(REPO / "deploy" / "dagster.production.yaml", home / "dagster.yaml")
        mlflow_port, code_port = free_port(), free_port()
        env = {
            **os.environ,
            **S3_CREDENTIALS,
            **image_env(),
            "DAGSTER_HOME": str(home),
            **production_postgres_env(pg, "dagster"),
            "ML_ASSETS_ENV": "production",
            # The automation's chain of requests after "Materialize all" settles in 5 s ticks, not 30 s.
            "ML_ASSETS_AUTOMATION_INTERVAL_SECONDS": "5",
            "ML_ASSETS_S3_ENDPOINT_URL": s3_endpoint,
            "ML_ASSETS_LANDING_BUCKET": BUCKET,
            "ML_ASSETS_COMPUTE_LOG_BUCKET": LOG_BUCKET,
            "ML_ASSETS_FAILURES_DIR": str(root / "failures"),
            "ML_ASSETS_CODE_SERVER_HOST": "127.0.0.1",
            "ML_ASSETS_CODE_SERVER_PORT": str(code_port),
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
            "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        }
        for name in ("ML_ASSETS_LANDING_DIR", "ML_ASSETS_STORAGE_DIR", "ML_ASSETS_MLFLOW_ARTIFACTS"):
            env.pop(name, None)
        mlflow = [
            str(BIN / "mlflow"),
            "server",
            *("--backend-store-uri", f"postgresql+psycopg2://{pg['user']}@{pg['host']}:{pg['port']}/mlflow"),
            *("--artifacts-destination", f"s3://{MLFLOW_BUCKET}/artifacts"),
            *("--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1"),
        ]
        code_server = [str(BIN / "dagster"), "code-server", "start", "-m", "ml_assets.definitions"]
        code_server += ["-h", "127.0.0.1", "-p", str(code_port)]
        with (
            process_group(mlflow, env, root / "mlflow.log", cwd=cwd) as tracking,
            process_group(code_server, env, root / "code-server.log", cwd=cwd),
        ):
            wait_for_http(f"{env['MLFLOW_TRACKING_URI']}/health", tracking, root / "mlflow.log")
            yield {
                "env": env,
                "root": root,
                "cwd": cwd,
                "s3": client,
                "pg": pg,
                "demo": demo,
                "days": days,
                "services": lambda: dagster_services(env, root, cwd),
            }


def keys(client, bucket: str, prefix: str = "") -> list[str]:
    paginator = client.get_paginator("list_objects_v2")
    return [
        o["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]


def succeeded_ingest_runs(gql: GraphQL) -> list[dict]:
    return [r for r in gql.runs() if r["jobName"] == "ingest" and r["status"] == "SUCCESS"]


def test_landing_to_champion_over_s3_postgres_and_three_processes(deployment):
    client, env = deployment["s3"], deployment["env"]
    with deployment["services"]() as gql:
        # The sensor lists the S3 prefix, registers 14 days and launches one ingest run per file.
        ingest = gql.wait(lambda: len(r := succeeded_ingest_runs(gql)) >= DAYS and r, 300, "ingest runs")
        assert len(ingest) == DAYS
        backfill = gql.backfill_all(EXECUTABLE_ASSETS, 300)
        assert backfill == {"status": "COMPLETED_SUCCESS", "numPartitions": DAYS}
        assert gql.latest_metadata("production_model")["champion_version"] == "1"
        # The automation sensor explains the new challenger, once.
        explained = gql.wait(lambda: gql.metadata_by_run("feature_importance"), 120, "the explanation")
        assert [m["model_version"] for m in explained.values()] == ["1"]
        # Once the automation has nothing more to ask for (see settled_runs); the restart must find these.
        settled = gql.settled_runs(300)
        # Meanwhile it scored every day with the new champion and monitored the scores.
        assert gql.partition_stats("predictions")["numMaterialized"] == DAYS
        assert gql.metadata_by_run("model_monitoring")
        runs_before = {r["runId"]: r["status"] for r in settled}
        jobs_before = sorted(r["jobName"] for r in settled)

    # Every table went to S3 as Parquet, one object per asset and day; nothing was written locally.
    warehouse = keys(client, BUCKET, "warehouse/")
    for asset in ("raw_data", "validated_data", "quarantine", "features"):
        assert sum(k.startswith(f"warehouse/{asset}/") and k.endswith(".parquet") for k in warehouse) == DAYS
    assert {"warehouse/trained_model.json", "warehouse/production_model.json"} <= set(warehouse)
    # Each day's features joined that day's weather file, read from the landing bucket.
    day = deployment["days"][DAYS - 1][8:18]
    body = client.get_object(Bucket=BUCKET, Key=f"warehouse/features/{day}.parquet")["Body"].read()
    assert pd.read_parquet(io.BytesIO(body))["temp"].notna().mean() > 0.9
    assert list(deployment["cwd"].iterdir()) == []
    # The model went through the tracking server into S3; the registry lives in Postgres.
    registry = registry_client(env["MLFLOW_TRACKING_URI"])
    assert str(registry.get_registered_model("flight_delay_classifier").aliases["champion"]) == "1"
    assert any(k.endswith(("model.skops", "model.pkl")) for k in keys(client, MLFLOW_BUCKET))
    # Step logs are in S3 and the runs in Postgres.
    assert keys(client, LOG_BUCKET, "compute-logs/")
    pg = deployment["pg"]
    with psycopg2.connect(dbname="dagster", **pg) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs")
        assert cursor.fetchone()[0] == len(runs_before)
        # The backfill's run planned each asset's days (the batching event log wrote its plan at once).
        cursor.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION_PLANNED'"
            " AND asset_key = '[\"features\"]' AND run_id = ANY(%s)",
            ([r["runId"] for r in settled if r["jobName"] != "ingest"],),
        )
        assert cursor.fetchone()[0] == DAYS
    # That event log is the instance's: the production yaml names our storages, and a process with
    # the deployment's environment (as webserver and daemon run) loads them.
    storage = (
        "import dagster as dg; i = dg.DagsterInstance.get()\n"
        "for s in (i.run_storage, i.event_log_storage, i.schedule_storage): print(type(s))"
    )
    instance = subprocess.run(
        [sys.executable, "-c", storage],
        env=env,
        cwd=deployment["root"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert instance.stdout.split() == [
        "<class",
        "'ml_assets.postgres_storage.OneConnectionPostgresRunStorage'>",
        "<class",
        "'ml_assets.postgres_storage.BatchingPostgresEventLogStorage'>",
        "<class",
        "'ml_assets.postgres_storage.OneConnectionPostgresScheduleStorage'>",
    ]

    # Webserver and daemon restart: the runs, the partitions and the sensor's cursor survive,
    # and a day put after the cursor gets exactly one new ingest run.
    with deployment["services"]() as gql:
        after = gql.runs()
        assert {r["runId"]: r["status"] for r in after} == runs_before, (
            jobs_before,
            [(r["jobName"], r["status"]) for r in after if r["runId"] not in runs_before],
        )
        assert gql.partition_stats("features") == {
            "numMaterialized": DAYS,
            "numPartitions": DAYS,
            "numFailed": 0,
        }
        land(client, deployment["demo"], deployment["days"][DAYS:])
        ingest = gql.wait(lambda: len(r := succeeded_ingest_runs(gql)) > DAYS and r, 180, "the new day's run")
        assert len(ingest) == DAYS + 1
        assert gql.partition_stats("raw_data")["numMaterialized"] == DAYS + 1
    assert f"warehouse/raw_data/{deployment['days'][DAYS][8:18]}.parquet" in keys(
        client, BUCKET, "warehouse/"
    )
