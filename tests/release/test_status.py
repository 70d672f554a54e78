"""Rollout judgement from Deployment and pod objects."""

from __future__ import annotations

import pytest

from operators.release.status import DONE, FAILED, PROGRESSING, evaluate_rollout

NEW = "registry.local/hello@sha256:" + "b" * 64
OLD = "registry.local/hello@sha256:" + "a" * 64


def deployment(
    image=NEW,
    *,
    generation=2,
    observed=2,
    replicas=2,
    updated=2,
    ready=2,
    available=2,
    total=2,
    reason=None,
):
    conditions = [
        {"type": "Progressing", "status": "True", "reason": reason or "NewReplicaSetAvailable"}
    ]
    if reason == "ProgressDeadlineExceeded":
        conditions[0]["status"] = "False"
    return {
        "metadata": {"name": "hello", "generation": generation},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "app", "image": image}]}},
        },
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conditions,
        },
    }


def pod(image=NEW, *, waiting=None, restarts=0, deleting=False):
    metadata = {"name": "hello-1"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {
            "containerStatuses": [{"name": "app", "restartCount": restarts, "state": state}]
        },
    }


@pytest.mark.parametrize(
    ("kwargs", "state", "words"),
    [
        ({}, DONE, "rolled out"),
        ({"observed": 1}, PROGRESSING, "observe generation"),
        ({"updated": 1}, PROGRESSING, "1 of 2 replicas updated"),
        ({"total": 3}, PROGRESSING, "old replicas pending termination"),
        ({"available": 1}, PROGRESSING, "1 of 2 updated replicas available"),
        ({"ready": 1}, PROGRESSING, "available"),
        ({"updated": 1, "reason": "ProgressDeadlineExceeded"}, FAILED, "ProgressDeadlineExceeded"),
    ],
)
def test_deployment_status_decides(kwargs, state, words):
    verdict = evaluate_rollout(deployment(**kwargs), container="app", image=NEW)
    assert verdict.state == state
    assert words in verdict.message


def test_crash_looping_new_pod_fails_before_the_deadline():
    verdict = evaluate_rollout(
        deployment(updated=1), [pod(waiting="CrashLoopBackOff")], container="app", image=NEW
    )
    assert verdict.state == FAILED and "CrashLoopBackOff" in verdict.message


def test_restarts_over_threshold_fail():
    verdict = evaluate_rollout(
        deployment(updated=1), [pod(restarts=3)], container="app", image=NEW, restart_threshold=3
    )
    assert verdict.state == FAILED and "restarted 3 times" in verdict.message
    assert (
        evaluate_rollout(deployment(updated=1), [pod(restarts=2)], container="app", image=NEW).state
        == PROGRESSING
    )


def test_old_or_terminating_pods_do_not_count_as_crash_loops():
    pods = [pod(OLD, waiting="CrashLoopBackOff"), pod(waiting="CrashLoopBackOff", deleting=True)]
    assert evaluate_rollout(deployment(), pods, container="app", image=NEW).state == DONE


def test_superseded_template_fails_and_missing_deployment_fails():
    assert evaluate_rollout(deployment(OLD), container="app", image=NEW).state == FAILED
    assert evaluate_rollout(None, container="app", image=NEW).state == FAILED


def test_without_an_image_only_settlement_counts():
    assert evaluate_rollout(deployment(OLD), container="app").state == DONE
