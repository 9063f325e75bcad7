"""Start real servers for integration tests: each in its own process group, always torn down."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What the Makefile and the Dockerfile set for every Dagster process beyond paths and stores: event
# batches for the instance's storage, glibc arenas for the IO manager's threads.
PROCESS_SETTINGS = ("DAGSTER_EVENT_BATCH_SIZE", "MALLOC_ARENA_MAX")


def image_env(names: tuple[str, ...] = PROCESS_SETTINGS) -> dict[str, str]:
    """Settings the production image (Dockerfile `ENV`) gives every process it runs, so the tests
    and the bench run the production stack as deployed."""
    import shlex

    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    pairs = dict(
        word.split("=", 1)
        for line in text.splitlines()
        if line.startswith("ENV ")
        for word in shlex.split(line[4:])
    )
    return {name: pairs[name] for name in names}


def dev_env(names: tuple[str, ...] = PROCESS_SETTINGS) -> dict[str, str]:
    """Settings `make dev` exports to `dagster dev` (Makefile `export NAME ?= value`), so the tests
    and the bench run the local stack as users start it."""
    pairs = dict(re.findall(r"^export (\w+) \?= (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE))
    return {name: pairs[name] for name in names}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def process_group(command: list[str], env: dict, log: Path, cwd: Path = REPO) -> Iterator[subprocess.Popen]:
    """Run `command` in a new session; on exit SIGTERM the group, then SIGKILL what is left."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout} s:\n{log.read_text()[-4000:]}")


# What the UI sends for "Materialize all" and reads back, as GraphQL.
LAUNCH_BACKFILL = """mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  }
}"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status numPartitions } } }"""
PARTITION_STATS = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  partitionStats { numMaterialized numPartitions numFailed } } } }"""
ASSET_METADATA = """query($key: AssetKeyInput!, $limit: Int!) { assetOrError(assetKey: $key) { ... on Asset {
  assetMaterializations(limit: $limit) { runId metadataEntries { label ... on TextMetadataEntry { text } } }
} } }"""
SENSOR_TICKS = """query($selector: SensorSelector!, $limit: Int!) { sensorOrError(sensorSelector: $selector) {
  ... on Sensor { sensorState { ticks(limit: $limit) { status timestamp } } } } }"""
BACKFILL_DONE = {"COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
RUN_DONE = {"SUCCESS", "FAILURE", "CANCELED"}


class GraphQL:
    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/graphql"

    def __call__(self, query: str, **variables) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise RuntimeError(payload["errors"])
        return payload["data"]

    def runs(self) -> list[dict]:
        data = self(
            "{ runsOrError { ... on Runs { results { runId jobName status endTime assetSelection { path }"
            " tags { key value } } } } }"
        )
        return data["runsOrError"]["results"]

    def backfills(self) -> list[dict]:
        fields = "id status endTimestamp"
        data = self(
            f"{{ partitionBackfillsOrError {{ ... on PartitionBackfills {{ results {{ {fields} }} }} }} }}"
        )
        return data["partitionBackfillsOrError"]["results"]

    def sensor_ticks(self, sensor: str, limit: int = 5) -> list[dict]:
        location = {"repositoryLocationName": "ml_assets", "repositoryName": "__repository__"}
        data = self(SENSOR_TICKS, selector={**location, "sensorName": sensor}, limit=limit)
        return data["sensorOrError"]["sensorState"]["ticks"]

    def settled_runs(self, timeout: float) -> list[dict]:
        """Every run once none is queued or in progress, no backfill is still to launch one, and the
        automation sensor has evaluated twice since the last run ended and requested nothing: its requests
        chain (a new challenger, then its explanation and each day's predictions, then monitoring),
        one link a tick (ML_ASSETS_AUTOMATION_INTERVAL_SECONDS), and a partitioned asset's days go
        through a backfill launched later."""

        def settled() -> list[dict]:
            backfills = self.backfills()
            if any(b["status"] not in BACKFILL_DONE for b in backfills):
                return []
            runs = self.runs()
            if not all(r["status"] in RUN_DONE for r in runs):
                return []
            # A backfill is marked done after its last run ends, and until then the automation sees its
            # assets in progress and holds back what follows them (monitoring after the predictions).
            last_end = max(
                [*(r["endTime"] or 0.0 for r in runs), *(b["endTimestamp"] or 0.0 for b in backfills)],
                default=0.0,
            )
            # Two ticks, not one: the first after a run can still see that run's assets in progress.
            ticks = self.sensor_ticks("automation", limit=2)
            quiet = len(ticks) == 2 and all(
                t["timestamp"] > last_end and t["status"] == "SKIPPED" for t in ticks
            )
            return runs if quiet else []

        return self.wait(settled, timeout, "every run to finish")

    def partition_stats(self, asset: str) -> dict:
        return self(PARTITION_STATS, key={"path": [asset]})["assetNodeOrError"]["partitionStats"]

    def latest_metadata(self, asset: str) -> dict[str, str | None]:
        (latest,) = self.metadata_by_run(asset, limit=1).values()
        return latest

    def metadata_by_run(self, asset: str, limit: int = 20) -> dict[str, dict[str, str | None]]:
        """The text metadata of `asset`'s latest materializations, by the run that recorded each."""
        events = self(ASSET_METADATA, key={"path": [asset]}, limit=limit)["assetOrError"][
            "assetMaterializations"
        ]
        return {e["runId"]: {m["label"]: m.get("text") for m in e["metadataEntries"]} for e in events}

    def backfill_all(self, assets: list[str], timeout: float) -> dict:
        """Launch a backfill of `assets` over all partitions, as "Materialize all" does; wait for it."""
        launched = self(
            LAUNCH_BACKFILL,
            params={"assetSelection": [{"path": [key]} for key in assets], "allPartitions": True},
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        return self.wait_backfill(launched["backfillId"], timeout)

    def wait_backfill(self, backfill_id: str, timeout: float) -> dict:
        return self.wait(
            lambda: (
                (b := self(BACKFILL, id=backfill_id)["partitionBackfillOrError"])["status"] in BACKFILL_DONE
                and b
            ),
            timeout,
            "the backfill",
        )

    def wait(self, predicate, timeout: float, what: str, poll: float = 1.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(poll)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def moto_s3_server(log: Path) -> Iterator[str]:
    """moto's standalone server: a real S3 HTTP endpoint on a free loopback port; yields its URL."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with process_group(command, {**os.environ, **S3_CREDENTIALS}, log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/moto-api/", process, log, timeout=60)
        yield url


def s3_client(endpoint_url: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
    )


def postgres_binaries() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs Debian's postgresql")
    return found[-1].parent


def production_postgres_env(server: dict, database: str) -> dict[str, str]:
    """The DAGSTER_PG_* settings deploy/dagster.production.yaml reads, for `database` on `server`."""
    return {
        "DAGSTER_PG_HOST": server["host"],
        "DAGSTER_PG_PORT": str(server["port"]),
        "DAGSTER_PG_USERNAME": server["user"],
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": database,
    }


@contextmanager
def postgres_server(log: Path, databases: tuple[str, ...], *, fsync: bool = False) -> Iterator[dict]:
    """A throwaway PostgreSQL cluster on a free loopback port, trust auth, user `dagster`.

    PostgreSQL refuses to run as root, so as root the cluster belongs to Debian's `postgres` user.
    Tests run it with fsync off (speed over durability); the benchmark keeps it on.
    """
    import psycopg2

    bin_dir = postgres_binaries()
    root = Path(tempfile.mkdtemp(prefix="ml_assets_pg_"))  # not under pytest's root-only tmp dirs
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    data = root / "data"
    try:
        subprocess.run(
            [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust"],
            check=True,
            capture_output=True,
        )
        port = free_port()
        command = [
            *as_postgres,
            str(bin_dir / "postgres"),
            *("-D", str(data), "-p", str(port), "-k", str(root)),
            *("-c", "listen_addresses=127.0.0.1", "-c", f"fsync={'on' if fsync else 'off'}"),
        ]
        with process_group(command, dict(os.environ), log, cwd=root) as process:
            server = {"host": "127.0.0.1", "port": port, "user": "dagster"}
            deadline = time.monotonic() + 60
            while True:
                try:
                    connection = psycopg2.connect(dbname="postgres", **server)
                    break
                except psycopg2.OperationalError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"postgres did not start:\n{log.read_text()[-3000:]}") from None
                    time.sleep(0.3)
            connection.autocommit = True
            with connection.cursor() as cursor:
                for name in databases:
                    cursor.execute(f"CREATE DATABASE {name}")
            connection.close()
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)
