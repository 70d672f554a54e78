"""Say in one line why a step's pod failed.

Works on pod and event objects of both the ``kubernetes`` and the ``kubernetes_asyncio``
clients (they share attribute names), so the operator and the trigger word failures alike:

- ``OOMKilled (container main, exit 137)``
- ``image pull failed: ErrImagePull <kubelet message> (container main)``
- ``unschedulable: 0/3 nodes are available: 3 Insufficient memory.``
- ``checkout failed: exit code 128; last lines: fatal: ...``
- ``exit code 1; last lines: ... | ... | ...``
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from operators.ci.logstream import one_line

IMAGE_PULL_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
# Pull errors the kubelet retries on its own and that usually pass (registry throttling or a
# registry outage): the step keeps waiting for them, up to its start-up timeout.
TRANSIENT_PULL_WORDS = (
    "too many requests",
    "rate limit",
    "pull qps exceeded",
    "timeout",
    "temporarily unavailable",
    "service unavailable",
    "bad gateway",
    "gateway timeout",
)
LAST_LINES = 3


def container_status(pod: Any, container: str) -> Any | None:
    """The status entry of an init or main container, or None before the kubelet reports it."""
    init, main = _statuses(pod)
    for status in (*init, *main):
        if status.name == container:
            return status
    return None


def is_scheduled(pod: Any) -> bool:
    status = getattr(pod, "status", None)
    if status is None:
        return False
    if status.phase not in (None, "Pending"):
        return True
    return any(
        condition.type == "PodScheduled" and condition.status == "True"
        for condition in status.conditions or []
    )


def pull_failed(status: Any) -> bool:
    """Whether a container waits on an image pull error that will not pass by itself."""
    waiting = status.state.waiting if status is not None and status.state is not None else None
    if waiting is None or waiting.reason not in IMAGE_PULL_REASONS:
        return False
    message = str(waiting.message or "").lower()
    return not any(word in message for word in TRANSIENT_PULL_WORDS)


def has_started(status: Any) -> bool:
    state = status.state if status is not None else None
    return state is not None and (state.running is not None or state.terminated is not None)


def is_running(status: Any) -> bool:
    state = status.state if status is not None else None
    return state is not None and state.running is not None


def _statuses(pod: Any) -> tuple[list[Any], list[Any]]:
    status = getattr(pod, "status", None)
    if status is None:
        return [], []
    return list(status.init_container_statuses or []), list(status.container_statuses or [])


def terminated_state(pod: Any, container: str) -> Any | None:
    """The ``terminated`` state of a container, or None while it has not ended."""
    init, main = _statuses(pod)
    for status in (*init, *main):
        if status.name == container and status.state is not None:
            return status.state.terminated
    return None


def exit_code(pod: Any, container: str) -> int | None:
    terminated = terminated_state(pod, container)
    return terminated.exit_code if terminated is not None else None


def last_lines(tail: Sequence[str] | None, count: int = LAST_LINES) -> str:
    lines = [one_line(line, 160) for line in list(tail or [])[-count:] if line.strip()]
    return " | ".join(lines) if lines else "(no output)"


def _unschedulable_message(pod: Any, events: Iterable[Any]) -> str | None:
    for event in events:
        if getattr(event, "reason", None) == "FailedScheduling" and event.message:
            return one_line(str(event.message), 300)
    status = getattr(pod, "status", None)
    for condition in (getattr(status, "conditions", None) or []) if status else []:
        if condition.type == "PodScheduled" and condition.status == "False":
            return one_line(str(condition.message or condition.reason or "not scheduled"), 300)
    return None


def describe_failure(
    pod: Any,
    main_container: str,
    *,
    events: Iterable[Any] = (),
    tails: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """One line a person understands: why the pod did not succeed."""
    events = list(events)
    tails = tails or {}
    init, main = _statuses(pod)
    for status in (*init, *main):
        for state in (status.state, getattr(status, "last_state", None)):
            terminated = state.terminated if state is not None else None
            if terminated is not None and terminated.reason == "OOMKilled":
                return f"OOMKilled (container {status.name}, exit {terminated.exit_code})"
    for status in (*init, *main):
        waiting = status.state.waiting if status.state is not None else None
        if waiting is not None and waiting.reason in IMAGE_PULL_REASONS:
            detail = one_line(str(waiting.message or ""), 300)
            return (
                f"image pull failed: {waiting.reason} {detail} (container {status.name})".replace(
                    "  ", " "
                )
            )
    unschedulable = _unschedulable_message(pod, events)
    if unschedulable is not None:
        return f"unschedulable: {unschedulable}"
    pod_status = getattr(pod, "status", None)
    reason = getattr(pod_status, "reason", None)
    message = getattr(pod_status, "message", None)
    if reason in ("DeadlineExceeded", "Evicted"):
        word = "deadline exceeded" if reason == "DeadlineExceeded" else "evicted"
        return f"{word}: {one_line(str(message or reason), 300)}"
    for status in init:
        terminated = status.state.terminated if status.state is not None else None
        if terminated is not None and terminated.exit_code != 0:
            return (
                f"{status.name} failed: exit code {terminated.exit_code}; "
                f"last lines: {last_lines(tails.get(status.name))}"
            )
    code = exit_code(pod, main_container)
    if code is not None and code != 0:
        return f"exit code {code}; last lines: {last_lines(tails.get(main_container))}"
    phase = getattr(pod_status, "phase", None)
    detail = " ".join(str(part) for part in (reason, message) if part)
    return f"pod ended in phase {phase}" + (f": {one_line(detail, 300)}" if detail else "")


class StartWatch:
    """Decide, poll after poll, whether a container started, cannot start or took too long.

    :param container: the container waited for.
    :param schedule_timeout: seconds a pod may stay unscheduled.
    :param startup_timeout: seconds a container may wait to start once the pod is scheduled.
    :param now: the time the wait began.
    """

    STARTED = "started"
    FAILED = "failed"
    TIMEOUT = "timeout"
    WAIT = "wait"

    def __init__(
        self, container: str, schedule_timeout: float, startup_timeout: float, now: float
    ) -> None:
        self.container = container
        self.schedule_timeout = schedule_timeout
        self.startup_timeout = startup_timeout
        self.began = now
        self.scheduled_at: float | None = None

    def verdict(self, pod: Any, now: float) -> str:
        status = container_status(pod, self.container)
        if has_started(status):
            return self.STARTED
        if pull_failed(status):
            return self.FAILED
        phase = getattr(getattr(pod, "status", None), "phase", None)
        if phase == "Failed":
            return self.FAILED
        if phase == "Succeeded":
            return self.STARTED
        if not is_scheduled(pod):
            return self.FAILED if now - self.began > self.schedule_timeout else self.WAIT
        if self.scheduled_at is None:
            self.scheduled_at = now
        return self.TIMEOUT if now - self.scheduled_at > self.startup_timeout else self.WAIT


TIMEOUT_MESSAGE = "timeout: the step ran past its time limit"


def startup_timeout_message(pod: Any, container: str, seconds: float) -> str:
    status = container_status(pod, container)
    waiting = status.state.waiting if status is not None and status.state is not None else None
    why = f" (waiting: {waiting.reason})" if waiting is not None and waiting.reason else ""
    return f"container {container} did not start within {seconds:.0f}s{why}"
