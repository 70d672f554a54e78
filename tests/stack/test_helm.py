"""deploy/helm/values.yaml for the official Airflow chart: executor, MySQL, our image, task logs."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.stack.compose import ROOT


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (ROOT / "deploy" / "helm" / "values.yaml").read_text(encoding="utf-8")
    )
    return data


def test_kubernetes_executor_with_our_pinned_image(values: dict[str, Any]) -> None:
    assert values["executor"] == "KubernetesExecutor"
    assert values["airflowVersion"] == "3.3.2"
    image = values["images"]["airflow"]
    assert image["repository"].endswith("/sre-delivery-airflow")
    assert image["tag"] and image["tag"] != "latest" and image["tag"].startswith("3.3.2")
    assert values["defaultAirflowTag"] == image["tag"]
    assert values["redis"]["enabled"] is False


def test_external_mysql_and_secrets_by_reference(values: dict[str, Any]) -> None:
    assert values["postgresql"]["enabled"] is False
    assert values["data"]["metadataSecretName"]
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert values[key], key
    text = (ROOT / "deploy" / "helm" / "values.yaml").read_text(encoding="utf-8")
    assert not re.search(r"(?i)(password|secret_key|fernet_key)\s*:\s*[^~\s]", text)


def test_remote_logging_uses_the_shared_settings_file(values: dict[str, Any]) -> None:
    assert values["elasticsearch"]["enabled"] is True
    assert values["elasticsearch"]["secretName"]
    env_from = yaml.safe_load(values["extraEnvFrom"])
    maps = [item["configMapRef"]["name"] for item in env_from if "configMapRef" in item]
    assert maps == ["airflow-task-logs"]
    docs = (ROOT / "docs" / "stack.md").read_text(encoding="utf-8")
    assert (
        "create configmap airflow-task-logs --from-env-file=include/logging/task-logs.env" in docs
    )
    for section in ("elasticsearch", "elasticsearch_configs"):
        assert all(value is None for value in values["config"][section].values()), section
    env_names = [item["name"] for item in values["env"]]
    assert env_names == ["AIRFLOW__ELASTICSEARCH__FRONTEND"]
    assert "{log_id}" in values["env"][0]["value"]


def test_migration_job_prepares_records_and_the_log_index(values: dict[str, Any]) -> None:
    script = " ".join(values["migrateDatabaseJob"]["args"])
    assert "airflow db migrate" in script
    assert "python -m operators.records migrate" in script
    assert "python -m operators.logsearch.setup" in script


def test_kubeconfigs_are_mounted_where_the_connections_expect_them(values: dict[str, Any]) -> None:
    mounts = {m["name"]: m for m in values["volumeMounts"]}
    assert mounts["kubeconfig"]["mountPath"] == "/opt/airflow/kubeconfig"
    assert mounts["kubeconfig"]["readOnly"] is True
    volumes = {v["name"]: v for v in values["volumes"]}
    assert volumes["kubeconfig"]["secret"]["secretName"]
