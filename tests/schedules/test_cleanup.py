"""The cleanup DAG end to end: a CI namespace on the Kubernetes stand-in and a records DB."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from operators.cleanup.kubernetes import CiPodCleanupOperator, expired, pod_finished_at
from operators.records import ImageRef, RecordsStore, TaskRef, TestCounts
from operators.records.migrate import migrate
from sandbox.kube.testing import run_site
from tests.schedules.test_nightly_ci import _delete_runs, parse

OURS = {"kubernetes_pod_operator": "True", "sre.io/step": "build"}
PLAIN_KPO = {"kubernetes_pod_operator": "True"}
DIGEST_OLD = "sha256:" + "1" * 64
DIGEST_LIVE = "sha256:" + "2" * 64
DIGEST_NEW = "sha256:" + "3" * 64


def _pod(name: str, labels: dict[str, str], command: list[str]) -> Any:
    from kubernetes import client

    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[client.V1Container(name="main", image="busybox", command=command)],
        ),
    )


def _job(name: str, labels: dict[str, str]) -> Any:
    from kubernetes import client

    template = client.V1PodTemplateSpec(spec=_pod("x", {}, ["true"]).spec)
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1JobSpec(template=template, backoff_limit=0),
    )


def _wait(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class CiNamespace:
    """Pods and Jobs in the stand-in's CI cluster, some finished days ago."""

    def __init__(self, api: Any) -> None:
        from kubernetes import client

        self.api = api
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)

    def pod(self, name: str, labels: dict, command: list[str], namespace: str = "ci") -> None:
        self.core.create_namespaced_pod(namespace, _pod(name, labels, command))

    def job(self, name: str, labels: dict) -> None:
        self.batch.create_namespaced_job("ci", _job(name, labels))

    def phase(self, name: str, namespace: str = "ci") -> str:
        return self.core.read_namespaced_pod(name, namespace).status.phase

    def finish_days_ago(self, name: str, days: float, namespace: str = "ci") -> None:
        pod = self.core.read_namespaced_pod(name, namespace)
        when = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        statuses = []
        for status in pod.status.container_statuses:
            data = self.api.sanitize_for_serialization(status)
            data["state"]["terminated"]["finishedAt"] = when
            statuses.append(data)
        body = {"status": {"containerStatuses": statuses}}
        self.core.patch_namespaced_pod_status(name, namespace, body)

    def job_done_days_ago(self, name: str, days: float) -> None:
        when = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.batch.patch_namespaced_job_status(name, "ci", {"status": {"completionTime": when}})

    def pods(self, namespace: str = "ci") -> set[str]:
        return {p.metadata.name for p in self.core.list_namespaced_pod(namespace).items}

    def jobs(self) -> set[str]:
        return {j.metadata.name for j in self.batch.list_namespaced_job("ci").items}


@pytest.fixture
def ci_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from kubernetes import config

    with run_site("ci-cluster", namespaces=["ci"], speed=10, images_dir=tmp_path) as site:
        extra = {"kube_config_path": str(site.kubeconfig_path), "namespace": "ci"}
        connection = json.dumps({"conn_type": "kubernetes", "extra": extra})
        monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_CI", connection)
        yield CiNamespace(config.new_client_from_config(config_file=str(site.kubeconfig_path)))


@pytest.fixture
def records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_CONN_SRE_RECORDS", f"sqlite://{tmp_path / 'records.db'}")
    with RecordsStore.from_conn_id() as store:
        migrate(store)
        yield store


def _backdate(store: RecordsStore, table: str, column: str, row_id: int, days: float) -> None:
    def work(tx) -> None:
        when = tx.dialect.to_db(tx.db_now() - timedelta(days=days))
        tx.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", (when, row_id))

    store.transaction(f"backdate {table}", work)


def _ids(store: RecordsStore, table: str) -> set[int]:
    return {
        row[0] for row in store.transaction("ids", lambda tx: tx.all(f"SELECT id FROM {table}"))
    }


def _seed_records(store: RecordsStore) -> dict[str, Any]:
    def ref(task: str) -> TaskRef:
        return TaskRef("ci_build", "manual__seed", task)

    seeded: dict[str, Any] = {}
    seeded["build_old"] = store.record_build(
        ref("old"),
        service="hello-api",
        commit="a" * 40,
        image="r/h@" + DIGEST_OLD,
        digest=DIGEST_OLD,
    )
    seeded["build_live"] = store.record_build(
        ref("live"),
        service="hello-api",
        commit="b" * 40,
        image="r/h@" + DIGEST_LIVE,
        digest=DIGEST_LIVE,
    )
    seeded["build_new"] = store.record_build(
        ref("new"),
        service="hello-api",
        commit="c" * 40,
        image="r/h@" + DIGEST_NEW,
        digest=DIGEST_NEW,
    )
    seeded["test_old"] = store.record_test_report(
        ref("test_old"), service="hello-api", counts=TestCounts(total=3), digest=DIGEST_OLD
    )
    for name, digest in (("release_old", DIGEST_OLD), ("release_live", DIGEST_LIVE)):
        release_id = store.start_release(
            service="hello-api",
            image="r/h@" + digest,
            digest=digest,
            triggered_by="tester",
            dag_id="dual_site_release",
            run_id=f"manual__{name}",
            source="api",
        )
        now_running = ImageRef("r/h@" + digest, digest)
        store.record_release_step(
            release_id, site="site-a", step="deploy", state="success", now_running=now_running
        )
        store.record_approval(
            TaskRef("dual_site_release", f"manual__{name}", "approve_second_site"),
            decision="approved",
            approver="rm",
            release_id=release_id,
        )
        store.finish_release(release_id, state="succeeded")
        seeded[name] = release_id
    for build in ("build_old", "build_live"):
        _backdate(store, "builds", "created_at", seeded[build], 400)
    _backdate(store, "test_reports", "created_at", seeded["test_old"], 400)
    for release in ("release_old", "release_live"):
        _backdate(store, "releases", "finished_at", seeded[release], 400)
    events = _ids(store, "audit_events")
    seeded["audit_ancient"], seeded["audit_recent"] = min(events), max(events)
    _backdate(store, "audit_events", "occurred_at", seeded["audit_ancient"], 800)
    return seeded


@pytest.mark.timeout(180)
def test_cleanup_deletes_only_our_finished_old_pods_and_old_records(
    ci_cluster: CiNamespace, records: RecordsStore
) -> None:
    ci = ci_cluster
    ci.pod("old-ok", OURS, ["true"])
    ci.pod("old-failed", OURS, ["false"])
    ci.pod("fresh-ok", OURS, ["true"])
    ci.pod("running", OURS, ["sleep", "300"])
    ci.pod("foreign-old", {"app": "registry"}, ["true"])
    ci.pod("other-kpo-old", PLAIN_KPO, ["true"])
    ci.pod("elsewhere-old", OURS, ["true"], namespace="default")
    ci.job("job-old", OURS)
    ci.job("job-fresh", OURS)
    finished = ("old-ok", "old-failed", "fresh-ok", "foreign-old", "other-kpo-old")
    _wait(lambda: all(ci.phase(p) in ("Succeeded", "Failed") for p in finished), "pods to finish")
    _wait(lambda: ci.phase("elsewhere-old", "default") == "Succeeded", "pod to finish")
    _wait(lambda: ci.phase("running") == "Running", "pod to run")
    _wait(
        lambda: all(
            ci.batch.read_namespaced_job(j, "ci").status.completion_time
            for j in ("job-old", "job-fresh")
        ),
        "jobs to complete",
    )
    for name in ("old-ok", "old-failed", "foreign-old", "other-kpo-old"):
        ci.finish_days_ago(name, 4)
    ci.finish_days_ago("elsewhere-old", 4, namespace="default")
    ci.job_done_days_ago("job-old", 4)
    seeded = _seed_records(records)

    run = parse("cleanup").test()
    _delete_runs({("cleanup", run.run_id)})

    assert run.state == "success"
    assert ci.pods() >= {"fresh-ok", "running", "foreign-old", "other-kpo-old"}
    assert not ci.pods() & {"old-ok", "old-failed"}
    assert "elsewhere-old" in ci.pods("default")
    assert ci.jobs() == {"job-fresh"}
    _wait(lambda: not any(p.startswith("job-old") for p in ci.pods()), "the old job's pods to go")
    assert seeded["build_old"] not in _ids(records, "builds")
    assert {seeded["build_live"], seeded["build_new"]} <= _ids(records, "builds")
    assert seeded["test_old"] not in _ids(records, "test_reports")
    assert _ids(records, "releases") == {seeded["release_live"]}
    steps = records.transaction("steps", lambda tx: tx.all("SELECT release_id FROM release_steps"))
    assert {row[0] for row in steps} == {seeded["release_live"]}
    assert seeded["audit_ancient"] not in _ids(records, "audit_events")
    assert seeded["audit_recent"] in _ids(records, "audit_events")
    (purge,) = [e for e in records.recent_audit_events(20) if e.action == "records.purged"]
    assert purge.source == "schedule"
    assert purge.detail["deleted"]["builds"] == 1
    assert purge.detail["deleted"]["releases"] == 1


def test_pod_cleanup_refuses_an_empty_selector_and_a_short_retention() -> None:
    for selector, hours in (("", 72), ("  ", 72), ("kubernetes_pod_operator=True", 0.5)):
        operator = CiPodCleanupOperator(
            task_id="t",
            kubernetes_conn_id="kubernetes_ci",
            namespace="ci",
            label_selector=selector,
            retention_hours=hours,
        )
        with pytest.raises(ValueError):
            operator.execute({})


def test_a_pod_still_running_never_counts_as_expired() -> None:
    from kubernetes import client

    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    running = client.V1Pod(
        metadata=client.V1ObjectMeta(name="r", creation_timestamp=long_ago),
        status=client.V1PodStatus(phase="Running"),
    )
    never_started = client.V1Pod(
        metadata=client.V1ObjectMeta(name="f", creation_timestamp=long_ago),
        status=client.V1PodStatus(phase="Failed"),
    )
    assert pod_finished_at(running) is None
    assert expired([running, never_started], pod_finished_at, datetime.now(UTC)) == [never_started]
