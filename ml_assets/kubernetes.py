"""Kubernetes: pod sizes per asset step, and the k8s executor's run config from the Helm values.

`python -m ml_assets.kubernetes deploy/helm/values.yaml` prints the run config to paste into the
Launchpad (or a job's default config) when the code location runs with `ML_ASSETS_EXECUTOR=k8s`.
Nothing here imports dagster-k8s: the code location loads without it when it runs elsewhere.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

# The tag dagster-k8s reads for a step pod's raw Kubernetes config.
K8S_CONFIG_TAG = "dagster-k8s/config"
DEPLOYMENT = "ml-assets"


def step_resources(cpu: str, memory: str) -> dict[str, str]:
    """Op tags asking for `cpu` and `memory` for the pod that runs an asset's step (memory capped)."""
    resources = {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}
    return {K8S_CONFIG_TAG: json.dumps({"container_config": {"resources": resources}})}


INGEST = step_resources("500m", "1Gi")
FEATURES = step_resources("1", "2Gi")
TRAINING = step_resources("2", "4Gi")
SERVING = step_resources("1", "2Gi")
LIGHT = step_resources("250m", "512Mi")


def user_deployment(values: Mapping[str, Any], name: str = DEPLOYMENT) -> Mapping[str, Any]:
    deployments = values["dagster-user-deployments"]["deployments"]
    for deployment in deployments:
        if deployment["name"] == name:
            return deployment
    raise KeyError(f"no user deployment named {name!r} in the Helm values")


def executor_run_config(values: Mapping[str, Any], max_concurrent: int = 4) -> dict[str, Any]:
    """Run config for `k8s_job_executor`, consistent with the chart's run launcher and the code
    location's deployment: same namespace and secrets, and the deployment's environment in every
    step pod (so a step loads the same resources as the code server)."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    deployment = user_deployment(values)
    return {
        "execution": {
            "config": {
                "job_namespace": launcher["jobNamespace"],
                "env_secrets": [secret["name"] for secret in launcher.get("envSecrets", [])],
                "env_vars": [f"{item['name']}={item['value']}" for item in deployment.get("env", [])],
                "max_concurrent": max_concurrent,
                # Deleting a run pod takes its step pods with it.
                "enable_owner_references": True,
            }
        }
    }


def main(argv: list[str] | None = None) -> None:
    import yaml

    (values_path,) = argv if argv is not None else sys.argv[1:]
    with open(values_path) as handle:
        values = yaml.safe_load(handle)
    print(yaml.safe_dump(executor_run_config(values), sort_keys=False))


if __name__ == "__main__":
    main()
