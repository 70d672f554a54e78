"""A rejected second-site approval backs the first site out; the second site is never touched.

The catalog asks for an approval before the second (primary) site. While ``dag.test()`` waits in
``release.approve_second_site``, a person rejects it the way the UI and the REST API do: through
the api-server's own ``PATCH .../hitlDetails`` handler, with a session on the metadata DB.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.release.world import SERVICE, start_world
from tests.release.world import test_catalog as write_catalog

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_ID = "dual_site_release"
APPROVAL_TASK = "release.approve_second_site"
APPROVER = "jane.doe"
COMMENT = "error budget spent this week"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = start_world(tmp_path_factory.mktemp("release-rejection"))
    write_catalog(world.tmp / "catalog.yaml", approval_before_second_site=True)
    yield world
    world.stack.close()


@pytest.fixture
def fresh(world):
    """Both sites on v1 and 50/50 before each scenario."""
    for site in ("site-a", "site-b"):
        if world.image_at(site) != world.images["v1"]:
            world.put_version(site, world.images["v1"])
    world.driver().set_weights(SERVICE, {"site-a": 50, "site-b": 50})
    return world


@dataclass
class Answer:
    """What the background responder saw and did."""

    run_id: str | None = None
    images_when_asked: dict[str, str] = field(default_factory=dict)
    weights_when_asked: dict[str, int] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)


def load_airflow_models() -> None:
    """Import and configure the ORM classes here, not first in the responder thread.

    Declaring mapped classes in one thread while another configures mappers deadlocks.
    """
    import airflow.api_fastapi.core_api.routes.public.hitl  # noqa: F401
    import airflow.models.hitl  # noqa: F401
    from sqlalchemy.orm import configure_mappers

    configure_mappers()


def awaiting_approval(started: datetime) -> str | None:
    """The run id of this test's run once its second-site approval waits for input."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(
            select(TaskInstance.run_id)
            .join(
                DagRun,
                (DagRun.dag_id == TaskInstance.dag_id) & (DagRun.run_id == TaskInstance.run_id),
            )
            .where(
                TaskInstance.dag_id == DAG_ID,
                TaskInstance.task_id == APPROVAL_TASK,
                TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                DagRun.start_date >= started,
            )
        )


def reject(run_id: str) -> None:
    """Record a rejection through the api-server's PATCH hitlDetails handler."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.utils.session import create_session

    with create_session() as session:
        update_hitl_detail(
            dag_id=DAG_ID,
            dag_run_id=run_id,
            task_id=APPROVAL_TASK,
            update_hitl_detail_payload=UpdateHITLDetailPayload(
                chosen_options=["Reject"], params_input={"comment": COMMENT}
            ),
            user=SimpleAuthManagerUser(username=APPROVER, role="op"),
            session=session,
            map_index=-1,
        )


def respond_with_rejection(
    world, started: datetime, answer: Answer, stop: threading.Event, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            run_id = awaiting_approval(started)
            if run_id is not None:
                answer.run_id = run_id
                answer.images_when_asked = {s: world.image_at(s) for s in ("site-a", "site-b")}
                answer.weights_when_asked = world.weights()
                reject(run_id)
                return
            stop.wait(0.3)
    except BaseException as error:  # handed to the test thread, which fails on it
        answer.errors.append(error)


def approval_rows(world, run_id: str) -> list[tuple[Any, ...]]:
    store = world.records()

    def work(tx):
        return tx.all(
            "SELECT task_id, decision, approver, comment, release_id FROM approvals "
            "WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, run_id),
        )

    return store.transaction("read approvals", work)


def step_started(world, release_id: int, site: str, step: str) -> datetime:
    store = world.records()

    def work(tx):
        row = tx.one(
            "SELECT created_at FROM release_steps WHERE release_id = %s AND site = %s AND step = %s",
            (release_id, site, step),
        )
        return store.dialect.from_db(row[0])

    return store.transaction("read step start", work)


def hitl_response(run_id: str) -> dict[str, Any]:
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        detail = session.scalar(
            select(HITLDetail)
            .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
            .where(
                TaskInstance.dag_id == DAG_ID,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == APPROVAL_TASK,
            )
        )
        return {
            "chosen_options": list(detail.chosen_options or []),
            "responded_by_user": detail.responded_by_user,
        }


@pytest.mark.timeout(90)
def test_rejected_second_site_approval_backs_the_first_site_out(fresh):
    from dags.dual_site_release import dag

    world = fresh
    load_airflow_models()
    answer, stop = Answer(), threading.Event()
    started = datetime.now(UTC)
    responder = threading.Thread(
        target=respond_with_rejection,
        args=(world, started, answer, stop, 75.0),
        name="approval-responder",
        daemon=True,
    )
    load = world.load().start()
    responder.start()
    try:
        run = dag.test(run_conf={"service": SERVICE, "image": world.images["v2"]})
    finally:
        stop.set()
        responder.join(timeout=10)
        users = load.stop()
    assert not answer.errors, answer.errors
    assert answer.run_id == run.run_id, "the approval never waited for input"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    release = world.records().release_for_run(DAG_ID, run.run_id, SERVICE)
    steps = {(step.site, step.step): step for step in release.steps}
    print(
        f"rejected: users sent={users.sent} failed={users.failed} by_site={users.by_site} "
        f"asked with images={answer.images_when_asked} weights={answer.weights_when_asked}"
    )

    # the approval was asked only once the secondary ran the new image at its normal share
    assert answer.images_when_asked == {"site-a": world.images["v1"], "site-b": world.images["v2"]}
    assert answer.weights_when_asked == {"site-a": 50, "site-b": 50}

    assert run.state == "failed", states
    assert states["release.secondary_site.bake"] == "success"
    assert states[APPROVAL_TASK] == "failed"
    assert states["release.primary_site.drain_traffic"] == "upstream_failed"
    assert states["release.primary_site.rollout"] == "upstream_failed"
    assert states["release.primary_site.rollback"] == "skipped"
    assert states["release.secondary_site.rollback"] == "success"
    assert states["release.complete"] != "success"

    assert world.image_at("site-a") == world.images["v1"]
    assert world.image_at("site-b") == world.images["v1"]
    assert world.weights() == {"site-a": 50, "site-b": 50}
    assert users.sent > 100 and users.failed == 0, users.first_failures

    assert hitl_response(run.run_id) == {
        "chosen_options": ["Reject"],
        "responded_by_user": {"id": APPROVER, "name": APPROVER},
    }
    assert approval_rows(world, run.run_id) == [
        (APPROVAL_TASK, "rejected", APPROVER, COMMENT, release.id)
    ]
    decision = steps[("all", "approval:second_site")]
    assert decision.state == "failed"
    assert decision.detail["decision"] == "rejected" and decision.detail["approver"] == APPROVER

    assert release.state == "rolled_back"
    # the primary was never touched: its only step is the rollback that found nothing to do
    assert {step for site, step in steps if site == "site-a"} == {"rollback"}
    primary, secondary = steps[("site-a", "rollback")], steps[("site-b", "rollback")]
    assert primary.state == "skipped" and secondary.state == "rolled_back"
    # one site at a time: the secondary's rollback began after the primary's had ended
    assert primary.updated_at <= step_started(world, release.id, "site-b", "rollback")
    for step in release.steps:
        if step.weights:
            assert max(step.weights.values()) > 0, step
    assert world.records().lock_holder(SERVICE) is None
