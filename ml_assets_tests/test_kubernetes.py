"""The shipped Kubernetes deployment: Helm values, the k8s executor's run config and step pod sizes,
resolved against the production definitions (no cluster runs here; dagster-k8s builds the objects)."""

import json
import re

import dagster as dg
import pytest
import yaml
from dagster_k8s import k8s_job_executor
from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

from ml_assets import kubernetes
from ml_assets.definitions import defs
from ml_assets_tests.integration.servers import REPO

VALUES = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
PRODUCTION_ENV = {
    **{item["name"]: item["value"] for item in kubernetes.user_deployment(VALUES)["env"]},
    "MLFLOW_TRACKING_URI": "http://mlflow.example.internal:5000",
}


@pytest.fixture
def k8s_definitions(monkeypatch):
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    return defs()


def test_values_deploy_this_code_location_in_production_with_the_k8s_executor():
    deployment = kubernetes.user_deployment(VALUES)
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "ml_assets.definitions"]
    assert PRODUCTION_ENV["ML_ASSETS_ENV"] == "production"
    assert PRODUCTION_ENV["ML_ASSETS_EXECUTOR"] == "k8s"
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert {"key": "ml_assets/training", "limit": 1} in coordinator["tagConcurrencyLimits"]
    # The image the values name is the one the Dockerfile builds: the same module as code server.
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r'CMD \["dagster", "code-server", "start", "-m", "ml_assets\.definitions"', dockerfile)
    assert "ML_ASSETS_ENV=production" in dockerfile


def test_executor_run_config_resolves_against_every_job(k8s_definitions):
    run_config = kubernetes.executor_run_config(VALUES)
    execution = run_config["execution"]["config"]
    assert execution["job_namespace"] == "dagster"
    assert execution["env_secrets"] == ["ml-assets-aws", "ml-assets-settings"]
    assert "ML_ASSETS_ENV=production" in execution["env_vars"]
    for name in ("ingest", "retrain", "promote", "rollback"):
        job = k8s_definitions.resolve_job_def(name)
        assert job.executor_def is k8s_job_executor
        dg.validate_run_config(job, run_config)
    # The check has teeth: a misspelt executor field is refused.
    broken = {"execution": {"config": {**execution, "max_concurent": 2}}}
    with pytest.raises(dg.DagsterInvalidConfigError, match="max_concurent"):
        dg.validate_run_config(k8s_definitions.resolve_job_def("retrain"), broken)


def step_job(tags: dict, image: str = "registry.example.com/ml-assets:0.1.0"):
    """The Kubernetes Job dagster-k8s builds for a step with these op tags."""
    launcher = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    config = DagsterK8sJobConfig(
        job_image=image,
        dagster_home="/opt/dagster/home",
        env_secrets=[secret["name"] for secret in launcher["envSecrets"]],
    )
    return construct_dagster_k8s_job(
        config, ["dagster", "api", "execute_step"], "step-job", get_user_defined_k8s_config(tags)
    )


def test_each_asset_step_pod_is_sized_by_its_op_tags(k8s_definitions):
    sizes = {}
    for assets_def in k8s_definitions.assets or []:
        if not isinstance(assets_def, dg.AssetsDefinition) or not assets_def.is_executable:
            continue
        tags = assets_def.op.tags
        assert kubernetes.K8S_CONFIG_TAG in tags, f"{assets_def.op.name} has no pod size"
        container = step_job(tags).spec.template.spec.containers[0]
        sizes[assets_def.op.name] = container.resources.requests
        assert container.resources.limits["memory"] == container.resources.requests["memory"]
        secrets = [source.secret_ref.name for source in container.env_from]
        assert secrets == ["ml-assets-aws", "ml-assets-settings"]
    assert sizes["trained_model"] == {"cpu": "2", "memory": "4Gi"}
    assert sizes["features"] == {"cpu": "1", "memory": "2Gi"}
    assert sizes["feature_importance"] == {"cpu": "1", "memory": "2Gi"}  # scoring, not training
    assert set(sizes) == {
        "raw_data",
        "validated_data",
        "features",
        "trained_model",
        "feature_importance",
        "production_model",
        "predictions",
        "model_monitoring",
    }


def test_run_config_command_prints_what_the_launchpad_takes(capsys):
    kubernetes.main([str(REPO / "deploy" / "helm" / "values.yaml")])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(kubernetes.executor_run_config(VALUES)))
