"""Pod names and labels for awkward task ids; one-line failure reasons from pod states."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.client import models as k8s

from operators.ci.failure import StartWatch, describe_failure
from operators.ci.naming import DNS_1123_LABEL, LABEL_VALUE, label_value, pod_name

AWKWARD_IDS = [
    "build.build",
    "ci_stage.run_tests",
    "a" * 80,
    "group.sub_group." + "very_long_task_name_" * 4,
    "测试.单元测试",
    "тест_сборки",
    "_leading.and.trailing_",
    "manual__2026-12-04T15:59:46.570850+00:00",
]


@pytest.mark.parametrize("task_id", AWKWARD_IDS)
def test_label_values_are_valid_and_distinct(task_id):
    value = label_value(task_id)
    assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), value
    assert label_value(task_id + "x") != value


@given(st.text(min_size=1, max_size=120))
def test_any_text_gives_a_valid_label_value(text):
    value = label_value(text)
    assert len(value) <= 63 and LABEL_VALUE.fullmatch(value)


@given(service=st.text(max_size=80), step=st.text(max_size=80))
def test_pod_names_are_dns_1123_and_at_most_63(service, step):
    name = pod_name(service, step)
    assert len(name) <= 63 and DNS_1123_LABEL.fullmatch(name), name


def test_pod_names_read_as_service_step_random():
    name = pod_name("hello-api", "build")
    assert name.startswith("hello-api-build-") and len(name) == len("hello-api-build-") + 8
    assert pod_name("hello-api", "build") != name
    long = pod_name("s" * 70, "test", suffix="abcdefgh")
    assert len(long) == 63 and long.endswith("-abcdefgh")


@pytest.mark.parametrize("task_id", AWKWARD_IDS)
def test_operator_task_labels_are_valid_for_awkward_ids(task_id):
    from operators.ci.step import StepPodOperator

    ti = SimpleNamespace(dag_id="ci_build", task_id=task_id, map_index=-1, try_number=3)
    context = {"ti": ti, "run_id": "manual__2026-12-04T15:59:46.570850+00:00"}
    labels = StepPodOperator._get_ti_pod_labels(context)
    assert labels["try_number"] == "3"
    for key, value in labels.items():
        assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), (key, value)


def status(name, *, running=False, waiting=None, terminated=None, last_terminated=None):
    state = k8s.V1ContainerState(
        running=k8s.V1ContainerStateRunning() if running else None,
        waiting=k8s.V1ContainerStateWaiting(**waiting) if waiting else None,
        terminated=k8s.V1ContainerStateTerminated(**terminated) if terminated else None,
    )
    last = (
        k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(**last_terminated))
        if last_terminated
        else None
    )
    return k8s.V1ContainerStatus(
        name=name,
        image="i",
        image_id="",
        ready=False,
        restart_count=0,
        state=state,
        last_state=last,
    )


def pod(phase="Failed", init=(), main=(), conditions=(), reason=None, message=None):
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="hello-api-test-abc", namespace="ci"),
        status=k8s.V1PodStatus(
            phase=phase,
            reason=reason,
            message=message,
            init_container_statuses=list(init) or None,
            container_statuses=list(main) or None,
            conditions=list(conditions) or None,
        ),
    )


DONE = {"exit_code": 0, "reason": "Completed"}


def test_oom_killed():
    p = pod(main=[status("main", terminated={"exit_code": 137, "reason": "OOMKilled"})])
    assert describe_failure(p, "main") == "OOMKilled (container main, exit 137)"


def test_image_pull_error():
    p = pod(
        phase="Pending",
        main=[
            status(
                "main",
                waiting={
                    "reason": "ErrImagePull",
                    "message": 'pull "x@sha256:1" failed:\n not found',
                },
            )
        ],
    )
    assert describe_failure(p, "main") == (
        'image pull failed: ErrImagePull pull "x@sha256:1" failed: not found (container main)'
    )


def test_unschedulable_names_the_scheduler_event():
    p = pod(
        phase="Pending",
        conditions=[
            k8s.V1PodCondition(
                type="PodScheduled", status="False", reason="Unschedulable", message="cond msg"
            )
        ],
    )
    event = SimpleNamespace(
        reason="FailedScheduling", message="0/1 nodes are available: 1 Insufficient memory."
    )
    assert (
        describe_failure(p, "main", events=[event])
        == "unschedulable: 0/1 nodes are available: 1 Insufficient memory."
    )
    assert describe_failure(p, "main") == "unschedulable: cond msg"


def test_checkout_and_step_exit_codes_with_last_lines():
    p = pod(init=[status("clone", terminated={"exit_code": 128, "reason": "Error"})])
    tails = {"clone": ["fatal: repository '/srv/git/x.git' does not exist"]}
    assert describe_failure(p, "main", tails=tails) == (
        "clone failed: exit code 128; last lines: fatal: repository '/srv/git/x.git' does not exist"
    )
    p = pod(
        init=[status("clone", terminated=DONE)],
        main=[status("main", terminated={"exit_code": 1, "reason": "Error"})],
    )
    tails = {"main": ["one", "two", "three", "four\tfive"]}
    message = describe_failure(p, "main", tails=tails)
    assert message == "exit code 1; last lines: two | three | four five"
    assert "\n" not in message


def test_other_endings_still_give_one_line():
    p = pod(
        reason="DeadlineExceeded",
        message="Pod was active on the node longer than the specified deadline",
    )
    assert describe_failure(p, "main").startswith("deadline exceeded: Pod was active")
    assert describe_failure(pod(phase="Unknown"), "main") == "pod ended in phase Unknown"


def test_start_watch_verdicts():
    scheduled = k8s.V1PodCondition(type="PodScheduled", status="True")
    watch = StartWatch("main", schedule_timeout=5, startup_timeout=10, now=0)
    assert watch.verdict(pod(phase="Pending"), 1) == StartWatch.WAIT
    assert watch.verdict(pod(phase="Pending"), 6) == StartWatch.FAILED  # never scheduled
    watch = StartWatch("main", schedule_timeout=5, startup_timeout=10, now=0)
    waiting = status("main", waiting={"reason": "PodInitializing"})
    assert (
        watch.verdict(pod(phase="Pending", conditions=[scheduled], main=[waiting]), 1)
        == StartWatch.WAIT
    )
    assert (
        watch.verdict(pod(phase="Pending", conditions=[scheduled], main=[waiting]), 12)
        == StartWatch.TIMEOUT
    )
    throttled = status(
        "main", waiting={"reason": "ErrImagePull", "message": "429 Too Many Requests"}
    )
    watch = StartWatch("main", schedule_timeout=5, startup_timeout=10, now=0)
    assert (
        watch.verdict(pod(phase="Pending", conditions=[scheduled], main=[throttled]), 1)
        == StartWatch.WAIT
    )
    running = status("main", running=True)
    assert watch.verdict(pod(phase="Running", main=[running]), 2) == StartWatch.STARTED
