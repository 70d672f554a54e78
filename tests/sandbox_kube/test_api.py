"""API fidelity: errors as ApiException with the real status, watches, selectors, patches."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import kubernetes_asyncio
import pytest
import urllib3
from kubernetes import client, config, watch

from sandbox.kube.testing import RunningSite, run_site
from tests.sandbox_kube.conftest import pod_body, python_command, wait_for, wait_phase

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SLEEP = python_command("import time; time.sleep(60)")


def status_of(exc: client.ApiException) -> dict:
    return json.loads(exc.body)


def test_conflict_invalid_not_found_reach_the_client(
    core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}, "data": {"a": "1"}})
    with pytest.raises(client.ApiException) as exists:
        core.create_namespaced_config_map("default", {"metadata": {"name": "dup"}})
    assert exists.value.status == 409
    body = status_of(exists.value)
    assert (body["kind"], body["reason"], body["message"]) == (
        "Status",
        "AlreadyExists",
        'configmaps "dup" already exists',
    )

    with pytest.raises(client.ApiException) as bad_name:
        core.create_namespaced_pod("default", pod_body("Not_DNS", SLEEP))
    assert bad_name.value.status == 422
    body = status_of(bad_name.value)
    assert body["reason"] == "Invalid" and body["details"]["causes"][0]["field"] == "metadata.name"
    assert body["message"].startswith(
        'Pod "Not_DNS" is invalid: metadata.name: Invalid value: "Not_DNS": a lowercase RFC 1123 subdomain'
    )

    with pytest.raises(client.ApiException) as long_label:
        core.create_namespaced_pod(
            "default", pod_body("long-label", SLEEP, labels={"run": "x" * 64})
        )
    assert long_label.value.status == 422
    assert "must be no more than 63 characters" in status_of(long_label.value)["message"]

    with pytest.raises(client.ApiException) as missing:
        apps.read_namespaced_deployment("absent", "default")
    assert missing.value.status == 404
    assert status_of(missing.value)["details"] == {
        "name": "absent",
        "group": "apps",
        "kind": "deployments",
    }

    with pytest.raises(client.ApiException) as no_namespace:
        core.create_namespaced_pod("nowhere", pod_body("p", SLEEP))
    assert (
        no_namespace.value.status == 404
        and status_of(no_namespace.value)["message"] == 'namespaces "nowhere" not found'
    )

    stale = core.read_namespaced_config_map("dup", "default")
    core.patch_namespaced_config_map("dup", "default", {"data": {"a": "2"}})
    with pytest.raises(client.ApiException) as conflict:
        core.replace_namespaced_config_map("dup", "default", stale)
    assert conflict.value.status == 409 and status_of(conflict.value)["reason"] == "Conflict"


def test_throttling_reaches_the_client_as_429_with_retry_after(
    site: RunningSite, core: client.CoreV1Api
) -> None:
    # urllib3 under the sync client honours Retry-After on 429 by itself: one 429 is absorbed.
    site.faults.throttle(count=1, retry_after=1, path="/namespaces/default/configmaps")
    started = time.monotonic()
    core.list_namespaced_config_map("default")
    assert time.monotonic() - started >= 1.0

    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(site.kubeconfig_path), client_configuration=configuration
    )
    configuration.retries = False
    no_retry = client.CoreV1Api(client.ApiClient(configuration))
    site.faults.throttle(
        count=1, retry_after=2, method="GET", path="/namespaces/default/configmaps"
    )
    with pytest.raises(client.ApiException) as throttled:
        no_retry.list_namespaced_config_map("default")
    assert throttled.value.status == 429
    assert throttled.value.headers["Retry-After"] == "2"
    assert status_of(throttled.value)["details"]["retryAfterSeconds"] == 2
    no_retry.list_namespaced_config_map("default")
    site.faults.error(status=503, count=1, path="/configmaps")
    with pytest.raises(client.ApiException) as unavailable:
        no_retry.list_namespaced_config_map("default")
    assert unavailable.value.status == 503
    site.faults.slow(delay_ms=300, count=1, path="/configmaps")
    started = time.monotonic()
    no_retry.list_namespaced_config_map("default")
    assert time.monotonic() - started >= 0.3
    assert site.faults.list() == []
    no_retry.api_client.close()

    async def asyncio_throttled() -> int:
        configuration = kubernetes_asyncio.client.Configuration()
        await kubernetes_asyncio.config.load_kube_config(
            config_file=str(site.kubeconfig_path), client_configuration=configuration
        )
        async with kubernetes_asyncio.client.ApiClient(configuration) as api:
            try:
                await kubernetes_asyncio.client.CoreV1Api(api).list_namespaced_config_map("default")
            except kubernetes_asyncio.client.ApiException as exc:
                return int(exc.status)
        return 0

    site.faults.throttle(count=1, path="/configmaps")
    assert asyncio.run(asyncio_throttled()) == 429


def test_missing_token_is_401(site: RunningSite) -> None:
    response = urllib3.PoolManager().request("GET", site.api_url + "/api/v1/namespaces")
    assert response.status == 401 and json.loads(response.data)["reason"] == "Unauthorized"


def test_stale_watch_gets_410_in_sync_and_asyncio_clients(
    site: RunningSite, core: client.CoreV1Api
) -> None:
    first = core.list_namespaced_config_map("default").metadata.resource_version
    for n in range(250):  # the module's site keeps 200 events
        core.create_namespaced_config_map("default", {"metadata": {"name": f"churn-{n}"}})
    with pytest.raises(client.ApiException) as gone:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=first, timeout_seconds=5
        ):
            pass
    assert gone.value.status == 410 and "too old resource version" in gone.value.reason

    async def asyncio_watch() -> int:
        configuration = kubernetes_asyncio.client.Configuration()
        await kubernetes_asyncio.config.load_kube_config(
            config_file=str(site.kubeconfig_path), client_configuration=configuration
        )
        async with kubernetes_asyncio.client.ApiClient(configuration) as api:
            v1 = kubernetes_asyncio.client.CoreV1Api(api)
            try:
                async for _ in kubernetes_asyncio.watch.Watch().stream(
                    v1.list_namespaced_config_map,
                    "default",
                    resource_version=first,
                    timeout_seconds=5,
                ):
                    pass
            except kubernetes_asyncio.client.ApiException as exc:
                return int(exc.status)
        return 0

    assert asyncio.run(asyncio_watch()) == 410
    core.delete_collection_namespaced_config_map("default", label_selector="")
    assert core.list_namespaced_config_map("default").items == []


def test_watch_from_resource_version_sees_selector_transitions_and_bookmarks(
    core: client.CoreV1Api,
) -> None:
    core.create_namespaced_pod("default", pod_body("tagged", SLEEP, labels={"tier": "a"}))
    rv = core.list_namespaced_pod("default", label_selector="tier=a").metadata.resource_version
    core.patch_namespaced_pod("tagged", "default", {"metadata": {"labels": {"tier": "b"}}})
    events = []
    for event in watch.Watch().stream(
        core.list_namespaced_pod,
        "default",
        label_selector="tier=a",
        resource_version=rv,
        timeout_seconds=1,
    ):
        events.append((event["type"], event["object"].metadata.labels.get("tier")))
    assert ("DELETED", "b") in events
    core.delete_namespaced_pod("tagged", "default", grace_period_seconds=0)


def test_patches_selectors_and_events(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(
        "default", pod_body("patched", SLEEP, labels={"app": "x", "keep": "yes"})
    )
    wait_phase(core, "patched", ("Running",))
    core.patch_namespaced_pod(
        "patched", "default", {"metadata": {"labels": {"already_checked": "True", "keep": None}}}
    )
    core.patch_namespaced_pod(
        "patched",
        "default",
        [{"op": "add", "path": "/metadata/annotations/note", "value": "json-patch"}],
    )
    core.api_client.call_api(
        "/api/v1/namespaces/default/pods/patched",
        "PATCH",
        header_params={"Content-Type": "application/merge-patch+json"},
        body={"metadata": {"annotations": {"merge": "yes"}}},
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    pod = core.read_namespaced_pod("patched", "default")
    assert pod.metadata.labels == {"app": "x", "already_checked": "True"}
    assert pod.metadata.annotations == {"note": "json-patch", "merge": "yes"}
    assert [
        p.metadata.name
        for p in core.list_namespaced_pod(
            "default", label_selector="app=x,already_checked!=True,!airflow-worker"
        ).items
    ] == []
    assert [
        p.metadata.name
        for p in core.list_namespaced_pod(
            "default", label_selector="app in (x,y),already_checked"
        ).items
    ] == ["patched"]
    running = core.list_namespaced_pod(
        "default", field_selector="status.phase=Running,metadata.name=patched"
    ).items
    assert [p.metadata.name for p in running] == ["patched"]
    with pytest.raises(client.ApiException) as unsupported:
        core.list_namespaced_pod("default", field_selector="spec.containers=x")
    assert unsupported.value.status == 400
    events = core.list_namespaced_event(
        "default", field_selector="involvedObject.name=patched"
    ).items
    assert {"Scheduled", "Started"} <= {e.reason for e in events}
    assert all(e.involved_object.kind == "Pod" for e in events)
    core.delete_namespaced_pod("patched", "default", grace_period_seconds=0)


def test_dropped_watch_stream_breaks_the_client_read(
    site: RunningSite, core: client.CoreV1Api
) -> None:
    failures: list[BaseException] = []

    def consume() -> None:
        try:
            for _ in watch.Watch().stream(
                core.list_namespaced_service, "default", timeout_seconds=30
            ):
                pass
        except BaseException as exc:
            failures.append(exc)

    reader = threading.Thread(target=consume)
    reader.start()
    deadline = time.monotonic() + 10
    while reader.is_alive() and time.monotonic() < deadline:
        time.sleep(0.3)
        site.faults.drop_streams(path="/services")
        reader.join(timeout=0.5)
    assert not reader.is_alive() and failures, "the cut stream must surface as a read error"


def test_jobs_run_pods_to_complete_and_failed(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    def job(name: str, code: str, backoff: int = 0) -> dict:
        template = {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "main", "image": "python:3.11-slim", "command": python_command(code)}
                ],
            }
        }
        return {"metadata": {"name": name}, "spec": {"backoffLimit": backoff, "template": template}}

    batch.create_namespaced_job("default", job("ok-job", "print('done')"))
    batch.create_namespaced_job("default", job("bad-job", "raise SystemExit(1)", backoff=1))

    def finished(name: str) -> object:
        status = batch.read_namespaced_job_status(name, "default").status
        return status.conditions and status

    done = wait_for(lambda: finished("ok-job"))
    assert [c.type for c in done.conditions] == [
        "SuccessCriteriaMet",
        "Complete",
    ] and done.succeeded == 1
    failed = wait_for(lambda: finished("bad-job"), timeout=30)
    assert (
        failed.conditions[-1].type == "Failed"
        and failed.conditions[-1].reason == "BackoffLimitExceeded"
    )
    assert failed.failed == 2
    pods = core.list_namespaced_pod("default", label_selector="job-name=ok-job").items
    assert len(pods) == 1 and pods[0].status.phase == "Succeeded"


def test_two_sites_are_independent(site: RunningSite, core: client.CoreV1Api) -> None:
    with run_site("site-b") as other:
        other_core = client.CoreV1Api(
            config.new_client_from_config(config_file=str(other.kubeconfig_path))
        )
        other_core.create_namespaced_config_map("default", {"metadata": {"name": "only-in-b"}})
        with pytest.raises(client.ApiException) as missing:
            core.read_namespaced_config_map("only-in-b", "default")
        assert missing.value.status == 404
        assert other.token != site.token
        other_core.api_client.close()


def test_discovery_documents(core: client.CoreV1Api, api_client: client.ApiClient) -> None:
    groups = client.ApisApi(api_client).get_api_versions()
    assert {g.name for g in groups.groups} >= {"apps", "batch"}
    resources = client.AppsV1Api(api_client).get_api_resources()
    names = {r.name for r in resources.resources}
    assert {"deployments", "deployments/status", "deployments/scale", "replicasets"} <= names
    assert client.VersionApi(api_client).get_code().git_version.startswith("v1.")


def test_status_subresources_and_watch_bookmarks(
    core: client.CoreV1Api, apps: client.AppsV1Api
) -> None:
    body = pod_body("status-pod", SLEEP, annotations={"sandbox.sre.io/fault": "image-pull-error"})
    core.create_namespaced_pod("default", body)

    def pull_error() -> object:
        statuses = (
            core.read_namespaced_pod_status("status-pod", "default").status.container_statuses or []
        )
        waiting = statuses and statuses[0].state.waiting
        return waiting and waiting.reason in ("ErrImagePull", "ImagePullBackOff")

    wait_for(pull_error)
    with pytest.raises(client.ApiException) as not_started:
        core.read_namespaced_pod_log("status-pod", "default")
    assert (
        not_started.value.status == 400
        and "waiting to start" in status_of(not_started.value)["message"]
    )
    core.delete_namespaced_pod("status-pod", "default", grace_period_seconds=0)

    deployment = {
        "metadata": {"name": "paused"},
        "spec": {
            "paused": True,
            "selector": {"matchLabels": {"app": "paused"}},
            "template": {
                "metadata": {"labels": {"app": "paused"}},
                "spec": {"containers": [{"name": "c", "image": "x", "command": SLEEP}]},
            },
        },
    }
    apps.create_namespaced_deployment("default", deployment)
    status = apps.read_namespaced_deployment_status("paused", "default")
    assert status.metadata.generation == 1
    patched = apps.patch_namespaced_deployment_status(
        "paused", "default", {"status": {"observedGeneration": 7}}
    )
    assert patched.status.observed_generation == 7
    replaced = apps.patch_namespaced_deployment(
        "paused", "default", {"status": {"observedGeneration": 9}}
    )
    assert replaced.status.observed_generation != 9, "the main resource ignores status changes"
    apps.delete_namespaced_deployment("paused", "default")


def test_bookmarks_on_a_watch_that_allows_them_and_event_expiry() -> None:
    with run_site("site-bookmarks", bookmark_interval=0.2, event_ttl_seconds=2) as other:
        api = config.new_client_from_config(config_file=str(other.kubeconfig_path))
        core = client.CoreV1Api(api)
        core.create_namespaced_pod("default", pod_body("short", python_command("print(1)")))
        kinds = [
            event["type"]
            for event in watch.Watch().stream(
                core.list_namespaced_pod, "default", allow_watch_bookmarks=True, timeout_seconds=1
            )
        ]
        assert "BOOKMARK" in kinds
        assert core.list_namespaced_event("default").items
        wait_for(lambda: not core.list_namespaced_event("default").items, timeout=10)
        api.close()
