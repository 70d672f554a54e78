"""The provider's KubernetesPodOperator runs pods end to end against a stand-in site.

The operator reaches the site through a real Airflow connection built from the site's
kubeconfig; the DAG runs with ``dag.test()``, which also runs the deferred task's trigger.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from sandbox.kube.testing import RunningSite, run_site

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(150)]

CONN_ID = "kubernetes_kpo_site"
BUNDLE = "sandbox-kube-tests"
LINES = 10_000
SCRIPT = f"""
import sys
out = sys.stdout.buffer
for i in range({LINES}):
    out.write(b"row %05d%s\\n" % (i, b" \\xff" if i == 4242 else b""))
out.flush()
"""


@pytest.fixture(scope="module")
def kpo_site() -> Iterator[RunningSite]:
    with run_site("site-kpo", speed=5) as running:
        yield running


DAG_FILE = """
import os
import sys
from datetime import datetime

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG

common = {
    "kubernetes_conn_id": os.environ.get("SANDBOX_KPO_CONN_ID", "kubernetes_default"),
    "namespace": "default",
    "image": "python:3.11-slim",
    "cmds": [sys.executable, "-c", os.environ.get("SANDBOX_KPO_SCRIPT", "print(1)")],
    "get_logs": True,
    "startup_check_interval_seconds": 1,
}
with DAG("sandbox_kube_pod_operator", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
    KubernetesPodOperator(task_id="sync_pod", name="sync-pod", deferrable=False, **common)
    KubernetesPodOperator(task_id="deferred_pod", name="deferred-pod", deferrable=True, poll_interval=0.5, **common)
    KubernetesPodOperator(
        task_id="failing_pod",
        name="failing-pod",
        on_finish_action="keep_pod",
        deferrable=False,
        retries=0,
        **{**common, "cmds": [sys.executable, "-c", "import sys; print('about to fail'); sys.exit(7)"]},
    )
"""


@pytest.fixture
def pod_operator_dag(
    kpo_site: RunningSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The test DAG in a bundle of its own, with a real connection to the site."""
    extra = {"kube_config_path": str(kpo_site.kubeconfig_path), "namespace": "default"}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "kubernetes", "extra": extra})
    )
    monkeypatch.setenv("SANDBOX_KPO_CONN_ID", CONN_ID)
    monkeypatch.setenv("SANDBOX_KPO_SCRIPT", SCRIPT)
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "sandbox_kube_pod_operator.py").write_text(DAG_FILE)
    bundles = [
        {
            "name": BUNDLE,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(folder), "refresh_interval": 0},
        },
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {},
        },
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    spec = importlib.util.spec_from_file_location(
        "sandbox_kube_pod_operator", folder / "sandbox_kube_pod_operator.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module.dag
    _forget_test_dag(module.dag.dag_id)


def _forget_test_dag(dag_id: str) -> None:
    """Leave the shared metadata DB without this test's DAG and bundle."""
    from airflow.api.common.delete_dag import delete_dag
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    delete_dag(dag_id, keep_records_in_log=False)
    with create_session() as session:
        session.execute(delete(DagBundleModel).where(DagBundleModel.name == BUNDLE))


def rows_logged(output: str, prefix: str) -> list[str]:
    """Pod log rows a task logged with `prefix` (structlog pads the message before the logger)."""
    pattern = re.compile(re.escape(prefix) + r"(row \d{5}(?: \\xff)?)\s")
    return [match.group(1) for match in pattern.finditer(output)]


def test_pod_operator_sync_and_deferrable_with_logs(
    kpo_site: RunningSite, pod_operator_dag: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    dag = pod_operator_dag
    run = dag.test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"sync_pod": "success", "deferred_pod": "success", "failing_pod": "failed"}, (
        states
    )

    expected = [f"row {i:05d}" + (" \\xff" if i == 4242 else "") for i in range(LINES)]
    output = capfd.readouterr().out
    sync_rows = rows_logged(output, "[base] ")
    deferred_rows = rows_logged(output, "[base] logs: ")
    assert deferred_rows == expected, "the deferred task reads the whole log after the trigger"
    assert sync_rows == expected, "the sync task follows the log, every line once, in order"

    core = client.CoreV1Api(
        config.new_client_from_config(config_file=str(kpo_site.kubeconfig_path))
    )
    pods = core.list_namespaced_pod(
        "default", label_selector="dag_id=sandbox_kube_pod_operator"
    ).items
    assert [p.metadata.labels["task_id"] for p in pods] == ["failing_pod"], (
        "succeeded pods are deleted"
    )
    failed = pods[0]
    assert failed.metadata.labels["already_checked"] == "True"
    assert failed.status.container_statuses[0].state.terminated.exit_code == 7
    core.api_client.close()
