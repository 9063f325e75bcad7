"""SIGKILL a real materialization while it rewrites partitions: every file stays readable (old or
new version, never half of one) and the next run succeeds. The run parses on forked workers, which
die with it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_assets.demo import seed
from ml_assets.resources.environment import usable_cores
from ml_assets.resources.files import ABANDONED_TEMP_SECONDS, SWEPT_MARKER
from ml_assets_tests.integration.servers import REPO

pytestmark = pytest.mark.integration
DAYS = 120


def materialize_raw(env: dict, first: str, last: str) -> subprocess.Popen:
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    command = [dagster, "asset", "materialize", "-m", "ml_assets.definitions", "--select", "raw_data"]
    command += ["--partition-range", f"{first}...{last}"]
    return subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def assert_every_partition_readable(directory: Path, expected_rows: dict[str, int]) -> None:
    finished = sorted(p for p in directory.iterdir() if p.suffix == ".parquet")
    assert [p.stem for p in finished] == sorted(expected_rows)
    for path in finished:
        assert len(pd.read_parquet(path)) == expected_rows[path.stem], path


def test_sigkill_mid_write_leaves_readable_partitions(tmp_path):
    landing = tmp_path / "landing"
    written = seed(landing, "2013-03-01", DAYS)
    days = [p.name[8:18] for p in written]
    expected = {d: len(p.read_text().splitlines()) - 1 for d, p in zip(days, written, strict=True)}
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "ML_ASSETS_LANDING_DIR": str(landing),
        "ML_ASSETS_STORAGE_DIR": str(tmp_path / "warehouse"),
    }
    (tmp_path / "home").mkdir()
    subprocess.run([sys.executable, "-m", "ml_assets.operations", "register"], env=env, cwd=REPO, check=True)
    first = materialize_raw(env, days[0], days[-1])
    assert first.wait(timeout=300) == 0, first.stderr.read().decode()[-3000:]
    raw_dir = tmp_path / "warehouse" / "raw_data"
    assert_every_partition_readable(raw_dir, expected)
    # The CLI's run parsed the range on forked workers, one a core up to 4 (the local default).
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("raw_data"))
    workers = min(4, usable_cores())
    assert event.asset_materialization.metadata["parse_workers"].value == (workers if workers > 1 else 0)

    # Rewrite every partition; kill the run once it is writing its new files (the range's new
    # versions go to temp files, synced, then renamed over the old ones) and before all are in place.
    started = time.time()
    second = materialize_raw(env, days[0], days[-1])
    deadline = time.monotonic() + 300
    rewritten = in_flight = 0
    while time.monotonic() < deadline and second.poll() is None:
        in_flight = sum(1 for _ in raw_dir.glob(".*.tmp"))
        rewritten = sum(p.stat().st_mtime > started for p in raw_dir.glob("*.parquet"))
        if in_flight >= 3 or rewritten >= 3:
            os.killpg(second.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    second.wait(timeout=30)
    assert second.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert rewritten < DAYS
    assert max(in_flight, rewritten) >= 3
    assert_every_partition_readable(raw_dir, expected)
    # The killed run's temp files stay (no write may remove another's in flight) until an hour has
    # passed over them; aged by hand here, with the folder's last sweep (the killed run's), the next
    # write into the folder removes them and says so.
    leftovers = sorted(raw_dir.glob(".*.tmp"))
    an_hour_ago = time.time() - ABANDONED_TEMP_SECONDS - 1
    for path in [*leftovers, raw_dir / SWEPT_MARKER]:
        os.utime(path, (an_hour_ago, an_hour_ago))

    third = materialize_raw(env, days[0], days[-1])
    _, log = third.communicate(timeout=300)
    assert third.returncode == 0, log.decode()[-3000:]
    assert_every_partition_readable(raw_dir, expected)
    assert sorted(raw_dir.glob(".*.tmp")) == []
    if leftovers:  # all but always: the run is killed with temp files in flight
        removed = f"removed {len(leftovers)} temp file(s) a killed run left beside raw_data's files"
        assert removed in log.decode()
    assert all(p.stat().st_mtime > started for p in raw_dir.glob("*.parquet"))
