"""The model lifecycle against a real `mlflow server` on loopback: tracking, registry aliases,
artifacts through the server's proxy, an outage, and two retrains at once."""

import json
import os
import subprocess
import sys
import time

import dagster as dg
import pytest

from ml_assets.definitions import defs
from ml_assets.partitions import landing_days
from ml_assets.resources.mlflow import MlflowTracking
from ml_assets_tests.conftest import make_resources, materialize_range, registry_client
from ml_assets_tests.integration.servers import REPO, free_port, process_group, wait_for_http

pytestmark = pytest.mark.integration
DAYS = [f"2013-01-{d:02d}" for d in range(1, 32)]
MODEL = "flight_delay_classifier"
TRAIN = {"ops": {"trained_model": {"config": {"holdout_days": 7, "max_iter": 120}}}}


def mlflow_server(root, port: int):
    command = [
        os.path.join(os.path.dirname(sys.executable), "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'server.db'}",
        "--artifacts-destination",
        str(root / "server-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    return process_group(command, {**os.environ}, root / "mlflow-server.log")


@pytest.fixture(scope="module")
def world(tmp_path_factory, landed_month):
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    resources = make_resources(root, landed_month, tracking_uri=uri)
    resources["mlflow"] = MlflowTracking(tracking_uri=uri)  # the server chooses where artifacts go
    definitions = defs()
    assets = [*definitions.assets, *definitions.asset_checks]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(landing_days.name, DAYS)
        server = mlflow_server(root, port)
        process = server.__enter__()
        wait_for_http(f"{uri}/health", process, root / "mlflow-server.log")
        state = {"root": root, "uri": uri, "port": port, "server": server, "resources": resources}
        state.update({"assets": assets, "instance": instance})
        first = materialize_range(assets, DAYS, instance=instance, resources=resources, run_config=TRAIN)
        state["first"] = first
        try:
            yield state
        finally:
            state["server"].__exit__(None, None, None)


def test_graph_against_the_server_registers_and_promotes(world):
    assert world["first"].success
    client = registry_client(world["uri"])
    (version,) = client.search_model_versions(f"name='{MODEL}'")
    assert str(version.version) == "1"
    model = client.get_registered_model(MODEL)
    assert {k: str(v) for k, v in model.aliases.items()} == {"champion": "1", "challenger": "1"}
    assert version.tags["promotion_decision"] == "promoted"
    run = client.get_run(version.run_id)
    assert run.data.tags["dagster_run_id"] == world["first"].run_id
    assert run.data.metrics["holdout_roc_auc"] > 0.65
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # stored by the server, not locally
    artifacts = {a.path for a in client.list_artifacts(version.run_id)}
    assert {"roc_curve.png", "reference_profile.json", "holdout_sample.parquet"} <= artifacts
    assert (world["root"] / "server-artifacts").is_dir()


def test_unreachable_server_fails_clearly_and_leaves_the_champion(world):
    world["server"].__exit__(None, None, None)  # the tracking server goes away
    started = time.monotonic()
    result = dg.materialize(
        world["assets"],
        selection=["trained_model", "production_model"],
        instance=world["instance"],
        resources=world["resources"],
        run_config=TRAIN,
        raise_on_error=False,
    )
    elapsed = time.monotonic() - started
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert failure.step_key == "trained_model"
    message = failure.step_failure_data.user_failure_data.description
    assert (
        message
        == f"MLflow tracking server {world['uri']} unreachable after 3 attempts; the registry was not changed"
    )
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == 2
    assert elapsed < 240
    # The server comes back: the registry is exactly as before the outage.
    world["server"] = mlflow_server(world["root"], world["port"])
    process = world["server"].__enter__()
    wait_for_http(f"{world['uri']}/health", process, world["root"] / "mlflow-server.log")
    client = registry_client(world["uri"])
    assert str(client.get_registered_model(MODEL).aliases["champion"]) == "1"
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 1


def test_two_retrains_at_once_leave_exactly_one_champion(world, tmp_path):
    """Two processes train and decide at the same time against the same registry."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "ML_ASSETS_LANDING_DIR": world["resources"]["landing"].landing_dir,
        "ML_ASSETS_STORAGE_DIR": world["resources"]["io_manager"].base_dir,
        "MLFLOW_TRACKING_URI": world["uri"],
    }
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        instance.add_dynamic_partitions(landing_days.name, DAYS)
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    command = [dagster, "asset", "materialize", "-m", "ml_assets.definitions"]
    command += ["--select", "trained_model,production_model", "--config-json"]
    config = json.dumps(
        {
            "ops": {
                "trained_model": {"config": {"holdout_days": 7, "max_iter": 60}},
                "production_model": {"config": {"promotion_margin": -1.0}},
            }
        }
    )
    runs = [
        subprocess.Popen(
            [*command, config], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.wait(timeout=600) == 0, run.stderr.read().decode()[-3000:]
    client = registry_client(world["uri"])
    versions = client.search_model_versions(f"name='{MODEL}'")
    assert len(versions) == 3
    champion = str(client.get_registered_model(MODEL).aliases["champion"])
    # search results carry no aliases: ask each version which aliases it holds
    holders = [
        str(v.version) for v in versions if "champion" in client.get_model_version(MODEL, v.version).aliases
    ]
    assert holders == [champion]
    assert champion in {"2", "3"}
    assert client.get_model_version(MODEL, champion).tags["promotion_decision"] == "promoted"
