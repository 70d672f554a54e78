"""Deployments roll out like the real controller, and the ingress follows what pods run."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from sandbox.kube.testing import RunningSite
from tests.sandbox_kube.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def deployment(
    name: str,
    version: str,
    app: Path,
    *,
    replicas: int = 3,
    fault: str | None = None,
    deadline: int = 600,
    namespace: str = "prod",
) -> dict[str, Any]:
    annotations = {"sandbox.sre.io/fault": fault} if fault else {}
    container = {
        "name": "app",
        "image": f"registry.local:5000/{name}:{version}",
        "command": [sys.executable, str(app)],
        "env": [{"name": "VERSION", "value": version}],
        "ports": [{"containerPort": 8080}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": 8080},
            "periodSeconds": 2,
            "failureThreshold": 1,
        },
    }
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": deadline,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [container]},
            },
        },
    }


def watch_until(
    apps: client.AppsV1Api, name: str, done: Any, namespace: str = "prod", timeout: int = 40
) -> list[Any]:
    """Watch one Deployment until `done(deployment)`; return every status seen."""
    seen = []
    stream = watch.Watch()
    for event in stream.stream(
        apps.list_namespaced_deployment,
        namespace,
        field_selector=f"metadata.name={name}",
        timeout_seconds=timeout,
    ):
        obj = event["object"]
        seen.append(obj)
        if done(obj):
            stream.stop()
            return seen
    raise AssertionError(
        f"deployment {name} never reached the expected state; last status: {seen[-1].status if seen else None}"
    )


def condition(obj: Any, kind: str) -> Any:
    return next((c for c in obj.status.conditions or [] if c.type == kind), None)


def rolled_out(obj: Any) -> bool:
    progressing = condition(obj, "Progressing")
    return (
        obj.status.observed_generation == obj.metadata.generation
        and progressing is not None
        and progressing.reason == "NewReplicaSetAvailable"
        and (obj.status.updated_replicas or 0) == obj.spec.replicas
        and (obj.status.available_replicas or 0) == obj.spec.replicas
    )


def ingress_get(site: RunningSite, host: str, path: str = "/") -> tuple[int, bytes]:
    request = urllib.request.Request(site.ingress_url + path, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_rollout_update_rollback_and_ingress(
    site: RunningSite, apps: client.AppsV1Api, app_script: Path
) -> None:
    apps.create_namespaced_deployment("prod", deployment("hello", "v1", app_script))
    seen = watch_until(apps, "hello", rolled_out)
    assert condition(seen[-1], "Available").status == "True"
    assert {ingress_get(site, "hello.prod:8080") for _ in range(4)} == {(200, b"v1")}
    assert ingress_get(site, "hello.prod", "/healthz") == (200, b"ok")

    apps.replace_namespaced_deployment("hello", "prod", deployment("hello", "v2", app_script))
    seen = watch_until(apps, "hello", rolled_out)
    generations = {s.status.observed_generation for s in seen}
    assert 2 in generations
    # maxSurge 25% of 3 rounds up to 1: never more than 4 pods; maxUnavailable rounds down to 0.
    assert max(s.status.replicas or 0 for s in seen) <= 4
    assert min(s.status.available_replicas or 0 for s in seen) >= 3
    assert {ingress_get(site, "hello.prod") for _ in range(4)} == {(200, b"v2")}
    sets = apps.list_namespaced_replica_set("prod", label_selector="app=hello").items
    revisions = {rs.metadata.annotations["deployment.kubernetes.io/revision"]: rs for rs in sets}
    assert set(revisions) == {"1", "2"}
    assert revisions["1"].spec.replicas == 0 and revisions["2"].spec.replicas == 3
    pod_hash = revisions["2"].metadata.labels["pod-template-hash"]
    assert revisions["2"].metadata.name == f"hello-{pod_hash}"
    assert (
        apps.read_namespaced_deployment("hello", "prod").metadata.annotations[
            "deployment.kubernetes.io/revision"
        ]
        == "2"
    )

    apps.replace_namespaced_deployment("hello", "prod", deployment("hello", "v1", app_script))
    watch_until(apps, "hello", rolled_out)
    sets = apps.list_namespaced_replica_set("prod", label_selector="app=hello").items
    assert len(sets) == 2, "a rollback reuses the old ReplicaSet"
    old = next(rs for rs in sets if rs.metadata.name == revisions["1"].metadata.name)
    assert (
        old.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
        and old.spec.replicas == 3
    )
    assert {ingress_get(site, "hello.prod") for _ in range(4)} == {(200, b"v1")}


def test_never_ready_version_exceeds_progress_deadline(
    site: RunningSite, apps: client.AppsV1Api, app_script: Path
) -> None:
    apps.create_namespaced_deployment(
        "prod", deployment("stuck", "v1", app_script, replicas=2, deadline=20)
    )
    watch_until(apps, "stuck", rolled_out)
    apps.replace_namespaced_deployment(
        "stuck",
        "prod",
        deployment("stuck", "v2", app_script, replicas=2, deadline=20, fault="never-ready"),
    )
    seen = watch_until(
        apps,
        "stuck",
        lambda d: (
            condition(d, "Progressing") or client.V1DeploymentCondition(status="", type="")
        ).reason
        == "ProgressDeadlineExceeded",
    )
    final = seen[-1]
    assert condition(final, "Progressing").status == "False"
    assert condition(final, "Available").status == "True", "old pods keep serving"
    assert final.status.updated_replicas == 1 and final.status.unavailable_replicas == 1
    assert {ingress_get(site, "stuck.prod") for _ in range(4)} == {(200, b"v1")}


def test_ingress_error_rate_no_ready_pods_and_unknown_hosts(
    site: RunningSite, apps: client.AppsV1Api, core: client.CoreV1Api, app_script: Path
) -> None:
    apps.create_namespaced_deployment(
        "prod", deployment("flaky", "v1", app_script, replicas=1, fault="http-error-rate=1.0")
    )
    watch_until(apps, "flaky", rolled_out)
    assert ingress_get(site, "flaky.prod")[0] == 500
    apps.create_namespaced_deployment(
        "prod", deployment("dark", "v1", app_script, replicas=1, fault="never-ready")
    )
    status, body = ingress_get(site, "dark.prod")
    assert status == 503 and b"no ready" in body
    assert ingress_get(site, "ghost.prod")[0] == 404
    service = {
        "metadata": {"name": "front"},
        "spec": {"selector": {"app": "flaky"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    core.create_namespaced_service("prod", service)
    assert ingress_get(site, "front.prod")[0] == 500, "a Service routes by its selector"


def test_scale_subresource_and_recreate_strategy(
    apps: client.AppsV1Api, core: client.CoreV1Api, app_script: Path
) -> None:
    body = deployment("batchy", "v1", app_script, replicas=1)
    body["spec"]["strategy"] = {"type": "Recreate"}
    apps.create_namespaced_deployment("prod", body)
    watch_until(apps, "batchy", rolled_out)
    apps.patch_namespaced_deployment_scale("batchy", "prod", {"spec": {"replicas": 2}})
    watch_until(apps, "batchy", lambda d: rolled_out(d) and d.spec.replicas == 2)
    scale = apps.read_namespaced_deployment_scale("batchy", "prod")
    assert scale.spec.replicas == 2 and scale.status.selector == "app=batchy"
    apps.delete_namespaced_deployment("batchy", "prod")
    wait_for(
        lambda: not core.list_namespaced_pod("prod", label_selector="app=batchy").items, timeout=15
    )
    assert not apps.list_namespaced_replica_set("prod", label_selector="app=batchy").items


def test_min_ready_seconds_delays_availability(apps: client.AppsV1Api, app_script: Path) -> None:
    body = deployment("patient", "v1", app_script, replicas=1)
    body["spec"]["minReadySeconds"] = 10  # one second at the module's speed of 10
    apps.create_namespaced_deployment("prod", body)
    seen = watch_until(apps, "patient", rolled_out)
    assert any(
        (s.status.ready_replicas or 0) == 1 and not s.status.available_replicas for s in seen
    )
    assert condition(seen[-1], "Available").status == "True"
