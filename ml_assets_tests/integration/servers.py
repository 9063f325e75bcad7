"""Start real servers for integration tests: each in its own process group, always torn down."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def process_group(command: list[str], env: dict, log: Path) -> Iterator[subprocess.Popen]:
    """Run `command` in a new session; on exit SIGTERM the group, then SIGKILL what is left."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
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
            "{ runsOrError { ... on Runs { results { runId jobName status assetSelection { path } } } } }"
        )
        return data["runsOrError"]["results"]

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
