"""The dual_site_release DAG end to end against two stand-in sites and the stand-in gateway.

User traffic runs through the gateway for the whole of every release; the counts of failed user
requests are printed and bounded.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.release.world import SERVICE, start_world

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = start_world(tmp_path_factory.mktemp("release"))
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


def run_release(world, image, **conf):
    from dags.dual_site_release import dag

    load = world.load().start()
    try:
        run = dag.test(run_conf={"service": SERVICE, "image": image, **conf})
    finally:
        users = load.stop()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    release = world.records().release_for_run("dual_site_release", run.run_id, SERVICE)
    return run, states, users, release


def steps_of(release):
    return {(step.site, step.step): step for step in release.steps}


@pytest.mark.timeout(150)
def test_good_release_reaches_both_sites_with_no_failed_user_request(fresh):
    world = fresh
    run, states, users, release = run_release(world, world.images["v2"])
    print(f"good release: users sent={users.sent} failed={users.failed} by_site={users.by_site}")
    assert run.state == "success", states
    assert world.image_at("site-a") == world.images["v2"]
    assert world.image_at("site-b") == world.images["v2"]
    assert world.weights() == {"site-a": 50, "site-b": 50}
    assert users.sent > 100 and users.failed == 0, users.first_failures
    assert release.state == "succeeded"
    steps = steps_of(release)
    for site in ("site-a", "site-b"):
        for step in ("drain", "rollout", "verify", "readmit:5", "readmit:25", "readmit:50", "bake"):
            assert steps[(site, step)].state == "success", (site, step)
    # the secondary went first, and finished before the primary was drained
    assert steps[("site-b", "bake")].updated_at <= steps[("site-a", "drain")].updated_at
    assert world.records().lock_holder(SERVICE) is None


@pytest.mark.timeout(150)
def test_never_ready_version_is_rolled_back_on_the_secondary_only(fresh):
    world = fresh
    run, states, users, release = run_release(world, world.images["never-ready"])
    print(f"never-ready: users sent={users.sent} failed={users.failed}")
    assert run.state == "failed"
    assert states["release.secondary_site.rollout"] == "failed"
    assert states["release.secondary_site.rollback"] == "success"
    assert states["release.primary_site.drain_traffic"] == "upstream_failed"
    assert world.image_at("site-b") == world.images["v1"]
    assert world.image_at("site-a") == world.images["v1"]
    assert world.weights() == {"site-a": 50, "site-b": 50}
    assert users.failed == 0, users.first_failures
    assert release.state == "rolled_back"
    assert steps_of(release)[("site-b", "rollback")].state == "rolled_back"


@pytest.mark.timeout(150)
def test_version_failing_real_requests_is_caught_at_the_first_readmit_step(fresh):
    world = fresh
    run, states, users, release = run_release(world, world.images["errors-30"])
    steps = steps_of(release)
    failed_step = steps[("site-b", "readmit:5")]
    window = failed_step.detail.get("total", 0)
    print(
        f"errors-30: users sent={users.sent} failed={users.failed} failed_by_site={users.failed_by_site} "
        f"site answers in the failed step={window}"
    )
    assert run.state == "failed"
    assert states["release.secondary_site.readmit_traffic"] == "failed"
    assert failed_step.state == "failed"
    assert ("site-b", "readmit:25") not in steps
    assert world.image_at("site-b") == world.images["v1"]
    assert world.image_at("site-a") == world.images["v1"]
    assert world.weights() == {"site-a": 50, "site-b": 50}
    # failures only from the 5% step's window at site-b (plus requests in flight when it was drained)
    assert 0 < users.failed <= failed_step.detail["total"] + 5


@pytest.mark.timeout(200)
def test_failure_at_the_primary_backs_both_sites_out_one_at_a_time(fresh):
    world = fresh
    run, states, users, release = run_release(world, world.images["bad-on-primary"])
    print(f"bad-on-primary: users sent={users.sent} failed={users.failed}")
    assert run.state == "failed"
    assert states["release.secondary_site.bake"] == "success"
    assert states["release.primary_site.rollout"] == "failed"
    assert states["release.primary_site.rollback"] == "success"
    assert states["release.secondary_site.rollback"] == "success"
    assert world.image_at("site-a") == world.images["v1"]
    assert world.image_at("site-b") == world.images["v1"]
    assert world.weights() == {"site-a": 50, "site-b": 50}
    assert users.failed == 0, users.first_failures
    steps = steps_of(release)
    first, second = steps[("site-a", "rollback")], steps[("site-b", "rollback")]
    assert first.state == second.state == "rolled_back"
    # one site at a time: the secondary's rollback began after the primary's had ended
    assert first.updated_at <= second_started(world, release.id)
    for step in release.steps:
        if step.weights:
            assert max(step.weights.values()) > 0, step


def second_started(world, release_id) -> datetime:
    store = world.records()

    def work(tx):
        row = tx.one(
            "SELECT created_at FROM release_steps WHERE release_id = %s AND site = %s AND step = %s",
            (release_id, "site-b", "rollback"),
        )
        return store.dialect.from_db(row[0])

    return store.transaction("read rollback start", work)
