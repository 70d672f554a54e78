"""StepPodOperator against the Kubernetes stand-in: the pod it builds, exactly-once logs through
dropped streams (here and in the triggerer), one-line failures, transient API answers, reattaching
after a worker restart, and never touching pods that are not its own."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from operators.ci.step import StepFailed, StepPodOperator, StepRejected
from tests.ci.conftest import ROOT, CapturedLogs, CiWorld
from tests.ci.fakes import FakeRecorder, FakeTaskInstance, context_for

pytestmark = [pytest.mark.integration]


def expected_lines(count: int) -> list[str]:
    """What the test catalog's chatty step prints (see tests/ci/conftest.py), as logged."""
    lines = []
    for i in range(count):
        if i % 500 == 7:
            lines.append(f"[main] line {i} bad \ufffd\ufffd bytes")
        elif i == 11:
            lines.append(f"[main] line 11 {'L' * 15000}")
        else:
            lines.append(f"[main] line {i} ok 你好")
    return [*lines, "[main] result kind=junit bytes=112", "[main] last line without newline"]


EXPECTED_CHATTY = expected_lines(3000)


def operator(
    service: str, step: str = "test", *, git_ref: str = "main", **kwargs: Any
) -> StepPodOperator:
    kwargs.setdefault("deferrable", False)
    kwargs.setdefault("recorder_factory", FakeRecorder().factory())
    return StepPodOperator(
        task_id=f"{step}.{service}", service=service, step=step, git_ref=git_ref, **kwargs
    )


def run_deferred(op: StepPodOperator, context: dict[str, Any]) -> Any:
    """What the task runner and the triggerer do: execute, run the trigger, resume."""
    with pytest.raises(TaskDeferred) as deferred:
        op.run_step(context)
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    assert classpath == "operators.ci.triggers.StepPodTrigger"
    again = type(trigger)(**kwargs)

    async def first_event():
        return await anext(again.run())

    event = asyncio.run(first_event()).payload
    fresh = StepPodOperator(
        **{k: getattr(op, k) for k in ("task_id", "service", "step", "git_ref", "recorder_factory")}
    )
    return getattr(fresh, deferred.value.method_name)(context, event)


@pytest.fixture(autouse=True)
def fresh(ci_world: CiWorld):
    ci_world.site.faults.clear()
    yield
    ci_world.site.faults.clear()
    ci_world.delete_all_pods()


def test_the_pod_comes_from_the_catalog_step_with_safe_checkout(ci_world: CiWorld):
    ti = FakeTaskInstance("group.sub_group." + "very_long_task_name_" * 4 + "测试")
    op = operator("hello-api", "build", git_ref="release/1.2")
    op.prepare(context_for(ti))
    pod = op.build_pod_request_obj(context_for(ti))
    assert pod.metadata.name.startswith("hello-api-build-") and len(pod.metadata.name) <= 63
    assert pod.metadata.namespace == "ci"
    labels = pod.metadata.labels
    assert labels["sre.io/service"] == "hello-api" and labels["sre.io/step"] == "build"
    assert all(len(value) <= 63 for value in labels.values())
    assert [c.name for c in pod.spec.init_containers] == ["clone", "checkout", "commit"]
    clone, checkout, commit = (c.command for c in pod.spec.init_containers)
    assert clone[-3:] == ["--", f"{ci_world.repo.url}", "/workspace/src"]
    assert checkout[-3:] == ["--detach", "release/1.2", "--"]
    assert all(c.image.startswith("alpine/git:") for c in pod.spec.init_containers)
    [main] = pod.spec.containers
    assert main.name == "main" and main.working_dir == "/workspace/src"
    assert main.command == ["sh", "ci/build.sh"]
    env = {e.name: e.value for e in main.env}
    assert (
        env["SERVICE"] == "hello-api"
        and env["GIT_REF"] == "release/1.2"
        and "GIT_COMMIT" not in env
    )
    assert env["IMAGE_STORE"] == str(ci_world.images)
    assert main.resources.limits == {"cpu": "1", "memory": "512Mi"}
    assert pod.spec.volumes[0].empty_dir is not None
    assert pod.spec.active_deadline_seconds == 15 * 60


@pytest.mark.parametrize("ref", ["$(id)", "main; rm -rf /", "--upload-pack=touch /tmp/x", "main\n"])
def test_a_hostile_ref_is_refused_at_execute_time_too(ci_world: CiWorld, ref: str):
    with pytest.raises(StepRejected, match="refused: git_ref"):
        operator("hello-api", git_ref=ref).run_step(context_for(FakeTaskInstance("test.hostile")))
    assert ci_world.pods() == []


@pytest.mark.timeout(90)
def test_every_line_once_in_order_through_dropped_streams(ci_world: CiWorld, logs: CapturedLogs):
    ci_world.site.faults.drop_streams(path="container=main", count=4)
    recorder = FakeRecorder()
    ti = FakeTaskInstance("test.chatty")
    result = operator("hello-chatty", recorder_factory=recorder.factory()).run_step(context_for(ti))
    assert logs.pod_lines("StepPodManager") == EXPECTED_CHATTY
    assert result["tests"]["total"] == 1 and ti.pushed["commit"] == ci_world.repo.branches["main"]
    assert logs.text.count("container=main interrupted") >= 3, "the step's stream was really cut"
    [(kind, written)] = recorder.writes
    assert kind == "test" and written["counts"].total == 1


@pytest.mark.timeout(90)
def test_the_trigger_follows_the_log_once_and_the_resume_does_not_print_it_again(
    ci_world: CiWorld, logs: CapturedLogs
):
    ci_world.site.faults.drop_streams(path="container=main", count=3)
    ci_world.site.faults.throttle(count=3, retry_after=1, path="/log")
    ti = FakeTaskInstance("test.chatty_deferred")
    result = run_deferred(operator("hello-chatty", deferrable=True), context_for(ti))
    assert logs.pod_lines("StepPodTrigger") == EXPECTED_CHATTY
    assert logs.pod_lines("StepPodManager") == []
    assert logs.text.count("container=main interrupted") >= 2 and "HTTP 429" in logs.text
    assert result["tests"]["total"] == 1


@pytest.mark.timeout(60)
def test_oom_unschedulable_and_image_pull_failures_say_why_in_one_line(ci_world: CiWorld):
    with pytest.raises(StepFailed) as oom:
        operator("hello-oom").run_step(context_for(FakeTaskInstance("test.oom")))
    assert str(oom.value) == "OOMKilled (container main, exit 137)"
    stuck = {
        "annotations": {"sandbox.sre.io/fault": "unschedulable"},
        "schedule_timeout_seconds": 2,
    }
    with pytest.raises(StepFailed, match=r"^unschedulable: \S") as unschedulable:
        run_deferred(
            operator("hello-api", deferrable=True, **stuck), context_for(FakeTaskInstance("t.u"))
        )
    assert "\n" not in str(unschedulable.value)
    pull = {"annotations": {"sandbox.sre.io/fault": "image-pull-error"}}
    with pytest.raises(
        StepFailed,
        match=r"^image pull failed: (ErrImagePull|ImagePullBackOff) .*\(container clone\)$",
    ):
        operator("hello-api", **pull).run_step(context_for(FakeTaskInstance("t.p")))


@pytest.mark.timeout(60)
def test_a_hostile_xml_report_from_the_pod_is_refused_clearly(ci_world: CiWorld):
    recorder = FakeRecorder()
    with pytest.raises(StepRejected, match="^junit report: refused unsafe XML"):
        operator("hello-hostile", recorder_factory=recorder.factory()).run_step(
            context_for(FakeTaskInstance("test.hostile_xml"))
        )
    [(kind, written)] = recorder.writes
    assert kind == "test" and "refused unsafe XML" in written["detail"]["failure"]


@pytest.mark.timeout(60)
def test_a_trigger_that_lost_a_running_pod_is_deferred_again_from_where_it_stopped(
    ci_world: CiWorld,
):
    ti = FakeTaskInstance("test.redefer")
    with pytest.raises(TaskDeferred) as first:
        operator("hello-slow", deferrable=True).run_step(context_for(ti))
    event = {
        "status": "error",
        "message": "lost track of the pod: HTTP 503",
        "name": first.value.trigger.pod_name,
        "namespace": "ci",
        "details": {"cursors": {"main": {"last_timestamp": "2026-12-04T10:00:00.5Z", "count": 2}}},
    }
    with pytest.raises(TaskDeferred) as again:
        operator("hello-slow", deferrable=True).execute_complete(context_for(ti), event)
    trigger = again.value.trigger
    assert trigger.pod_name == first.value.trigger.pod_name
    assert trigger.log_cursors == event["details"]["cursors"]
    assert trigger.trigger_kwargs["_redefer_count"] == 1


@pytest.mark.timeout(60)
def test_transient_api_answers_are_retried(ci_world: CiWorld, logs: CapturedLogs):
    ci_world.site.faults.add(
        [
            {"status": 429, "count": 4, "retry_after": 1, "path": "/pods"},
            {"status": 503, "count": 2, "path": "/pods/"},
            {"status": 500, "count": 2, "path": "/log"},
        ]
    )
    result = operator("hello-api", "build").run_step(
        context_for(FakeTaskInstance("build.throttled"))
    )
    assert result["digest"].startswith("sha256:")
    assert ci_world.site.faults.list() == []
    assert "HTTP 429" in logs.text and "HTTP 503" in logs.text and "HTTP 500" in logs.text


def wait_for(check, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


def main_running(ci_world: CiWorld, selector: str) -> Any:
    for pod in ci_world.pods(selector):
        for status in pod.status.container_statuses or []:
            if status.name == "main" and status.state.running is not None:
                return pod
    return None


@pytest.mark.timeout(90)
def test_a_worker_killed_mid_step_is_followed_by_a_reattach_not_a_second_pod(
    ci_world: CiWorld, logs: CapturedLogs
):
    selector = "task_id=test.worker_restart,sre.io/service=hello-slow"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.ci.step_worker", "hello-slow", "test", "1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        first = wait_for(lambda: main_running(ci_world, selector), timeout=60)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    assert main_running(ci_world, selector) is not None, "the step outlived its worker"
    seen: set[str] = set()
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            seen.update(pod.metadata.name for pod in ci_world.pods(selector))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ti = FakeTaskInstance("test.worker_restart", try_number=1)
    try:
        result = operator("hello-slow").run_step(context_for(ti))
    finally:
        watching.set()
        watcher.join(timeout=5)
    assert result["tests"]["total"] == 1
    assert f"reattaching to pod={first.metadata.name}" in logs.text
    assert "created pod=" not in logs.text
    assert seen == {first.metadata.name}, "one pod for the try, never a second"
    assert logs.pod_lines("StepPodManager") == expected_lines(300)


@pytest.mark.timeout(90)
def test_a_finished_pod_of_an_earlier_try_is_never_picked_up(ci_world: CiWorld, logs: CapturedLogs):
    with pytest.raises(StepFailed):
        operator("hello-oom").run_step(context_for(FakeTaskInstance("test.retried", try_number=1)))
    [old] = ci_world.pods("task_id=test.retried")
    assert old.metadata.labels["already_checked"] == "True"
    # as if the worker had died before marking it: a finished, unmarked pod of try 1
    ci_world.core.patch_namespaced_pod(
        old.metadata.name, "ci", {"metadata": {"labels": {"already_checked": None}}}
    )
    foreign = ci_world.core.create_namespaced_pod(
        "ci",
        {
            "metadata": {"name": "not-ours", "labels": {"app": "registry"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "60"]}]},
        },
    )
    ti = FakeTaskInstance("test.retried", try_number=2)
    with pytest.raises(StepFailed, match="OOMKilled"):
        operator("hello-oom").run_step(
            {**context_for(ti), "task_state_store": StateStore(foreign.metadata.name)}
        )
    pods = {pod.metadata.name: pod for pod in ci_world.pods("task_id=test.retried")}
    assert set(pods) == {
        old.metadata.name,
        *(n for n in pods if pods[n].metadata.labels["try_number"] == "2"),
    }
    assert len(pods) == 2 and pods[old.metadata.name].metadata.labels["already_checked"] == "True"
    assert f"reattaching to pod={old.metadata.name}" not in logs.text
    assert ci_world.core.read_namespaced_pod("not-ours", "ci").metadata.deletion_timestamp is None


class StateStore:
    """A task state store that remembers a pod the task does not own."""

    def __init__(self, name: str) -> None:
        self.values: dict[str, Any] = {"pod_identifier": {"name": name, "namespace": "ci"}}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, **kwargs: Any) -> None:
        self.values[key] = value
