"""Release operators on their own, for faults a DAG run cannot stage: a held lock, an unreachable
site API, a gateway admin API that is down for a while, a worker killed while a rollout waits."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from tests.release.world import SERVICE, start_world

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class FakeTI:
    """The XCom side of a task instance (the Airflow boundary, not the systems under test)."""

    def __init__(self, task_id: str, store: dict) -> None:
        self.task_id = task_id
        self.store = store

    def xcom_push(self, key, value):
        self.store[(self.task_id, key)] = json.loads(json.dumps(value))

    def xcom_pull(self, task_ids=None, key="return_value"):
        return self.store.get((task_ids or self.task_id, key))


def context_for(task_id: str, store: dict, run_id: str = "manual__ops") -> dict:
    return {
        "ti": FakeTI(task_id, store),
        "run_id": run_id,
        "dag": SimpleNamespace(dag_id="dual_site_release"),
        "dag_run": SimpleNamespace(triggering_user_name="tester"),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = start_world(tmp_path_factory.mktemp("release-ops"))
    yield world
    world.stack.close()


def preflight_op(world, image, **kwargs):
    from operators.release.preflight import ReleasePreflightOperator

    return ReleasePreflightOperator(
        task_id="preflight", service=SERVICE, image=image, preflight_task_id="preflight", **kwargs
    )


@pytest.mark.timeout(60)
def test_second_release_of_a_service_is_refused_by_the_lock(world):
    from airflow.sdk.exceptions import AirflowFailException

    store = world.records()
    assert store.acquire_lock(SERVICE, "manual__first", 600)
    try:
        with pytest.raises(
            AirflowFailException, match=r"already running \(run manual__first holds it"
        ):
            preflight_op(world, world.images["v2"]).execute(
                context_for("preflight", {}, "manual__second")
            )
        assert store.lock_holder(SERVICE).owner_run_id == "manual__first"
        assert store.release_for_run("dual_site_release", "manual__second", SERVICE) is None
    finally:
        store.release_lock(SERVICE, "manual__first")


@pytest.mark.timeout(60)
def test_unreachable_site_api_at_preflight_changes_nothing(world, monkeypatch, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(
        world.sites["site-b"]
        .kubeconfig_path.read_text()
        .replace(world.sites["site-b"].api_url, "http://127.0.0.1:9")
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_KUBERNETES_SITE_B",
        json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(dead)}}),
    )
    before = world.weights()
    with pytest.raises(AirflowFailException, match="preflight refused: site site-b"):
        preflight_op(world, world.images["v2"]).execute(
            context_for("preflight", {}, "manual__unreachable")
        )
    assert world.weights() == before
    assert world.records().lock_holder(SERVICE) is None
    assert (
        world.records().release_for_run("dual_site_release", "manual__unreachable", SERVICE) is None
    )
    assert world.image_at("site-b") == world.images["v1"]


@pytest.mark.timeout(90)
def test_gateway_admin_down_for_a_while_is_retried(world):
    from operators.release.traffic import SiteDrainOperator

    store: dict = {("preflight", "return_value"): {"normal_weights": {"site-a": 50, "site-b": 50}}}
    drain = SiteDrainOperator(
        task_id="drain",
        service=SERVICE,
        image=world.images["v2"],
        preflight_task_id="preflight",
        site="site-b",
        pause_seconds=0.2,
    )
    world.gateway.set_fault("503", seconds=3)
    try:
        result = drain.execute(context_for("drain", store))
    finally:
        world.gateway.clear_fault()
        world.driver().set_weights(SERVICE, {"site-a": 50, "site-b": 50})
    assert result["after"] == {"site-a": 100, "site-b": 0}
    refused = [call for call in world.gateway.admin_requests() if call.get("status") == 503]
    print(f"gateway admin calls answered 503 and retried: {len(refused)}")
    assert refused


@pytest.mark.timeout(120)
def test_worker_killed_while_waiting_on_a_rollout_resumes_correctly(world):
    from airflow.sdk.exceptions import TaskDeferred

    from operators.release.rollout import DeploymentRolloutOperator

    v1, v2 = world.images["v1"], world.images["v2"]
    world.driver().set_weights(SERVICE, {"site-a": 100, "site-b": 0})
    store: dict = {("preflight", "return_value"): {"normal_weights": {"site-a": 50, "site-b": 50}}}

    def operator():
        return DeploymentRolloutOperator(
            task_id="rollout",
            service=SERVICE,
            image=v2,
            preflight_task_id="preflight",
            site="site-b",
        )

    try:
        with pytest.raises(TaskDeferred) as deferred:
            operator().execute(context_for("rollout", store))
        # the worker dies here; a retry on another worker runs execute again from scratch
        store.clear()
        store[("preflight", "return_value")] = {"normal_weights": {"site-a": 50, "site-b": 50}}
        with pytest.raises(TaskDeferred) as again:
            operator().execute(context_for("rollout", store))
        assert store[("rollout", "previous_image")] == v1, (
            "the retry must remember the template before this run"
        )
        classpath, kwargs = again.value.trigger.serialize()
        assert kwargs == deferred.value.trigger.serialize()[1] | {"deadline": kwargs["deadline"]}
        module, _, name = classpath.rpartition(".")
        trigger = getattr(__import__(module, fromlist=[name]), name)(**kwargs)

        async def first_event():
            async for event in trigger.run():
                return event.payload

        event = asyncio.run(first_event())
        assert event["status"] == "success", event
        result = operator().execute_complete(context_for("rollout", store), event)
        assert result["image"] == v2
        assert world.image_at("site-b") == v2
    finally:
        world.put_version("site-b", v1)
        world.driver().set_weights(SERVICE, {"site-a": 50, "site-b": 50})
