"""Deferrable waiting for a step's pod, streaming its log into the task log while it runs.

:class:`StepPodTrigger` extends the provider's ``KubernetesPodTrigger``. Instead of reading the
whole log into memory at the end, it follows each container's log stream with the same
exactly-once logic as the synchronous path (``operators.ci.logstream``), logs each line as it
arrives (the triggerer writes trigger logs next to the task's log, and the UI shows them with
it), collects the step's result lines, and yields one event:

``{"status": "success"|"failed"|"timeout"|"error", "message": <one line>, "name": <pod>,
"namespace": <ns>, "details": {"results": [...], "result_errors": [...], "tails": {...},
"cursors": {...}, "exit_code": int|None, "lines": int}, "last_log_time": <RFC 3339>}``

Limit: if the triggerer restarts while a step runs, the new trigger starts again from its
serialized arguments and shows the log from the beginning once more; the results stay right.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger
from airflow.triggers.base import TriggerEvent

from operators.ci.failure import (
    TIMEOUT_MESSAGE,
    StartWatch,
    container_status,
    describe_failure,
    exit_code,
    is_running,
    startup_timeout_message,
)
from operators.ci.logstream import LogCursor, LogFollower, batches
from operators.ci.retry import acall_with_retry, describe, is_transient, stream_delay

if TYPE_CHECKING:
    from kubernetes_asyncio.client.models import V1Pod

CONNECT_TIMEOUT = 30.0
FOLLOW_READ_TIMEOUT = 300.0
READ_TIMEOUT = 60.0
MAX_STREAM_FAILURES = 30
CHUNK = 64 * 1024


class StepPodTrigger(KubernetesPodTrigger):
    """Follow a step pod's containers until the main one ends, logging every line once.

    Takes every argument of ``KubernetesPodTrigger`` plus:

    :param init_containers: init containers whose logs come first, in order.
    :param log_cursors: where earlier readers stopped, per container (``LogCursor.to_dict()``).
    :param step_deadline: epoch seconds after which the step counts as timed out.
    """

    def __init__(
        self,
        *,
        init_containers: list[str] | None = None,
        log_cursors: dict[str, dict[str, Any]] | None = None,
        step_deadline: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_containers = list(init_containers or [])
        self.log_cursors = dict(log_cursors or {})
        self.step_deadline = step_deadline
        self._followers: dict[str, LogFollower] = {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        kwargs.update(
            init_containers=self.init_containers,
            log_cursors=self.log_cursors,
            step_deadline=self.step_deadline,
            log_events_on_startup=self.log_events_on_startup,
        )
        return (f"{type(self).__module__}.{type(self).__qualname__}", kwargs)

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self.log.info(
            "following pod=%s namespace=%s containers=%s",
            self.pod_name,
            self.pod_namespace,
            [*self.init_containers, self.base_container_name],
        )
        try:
            event = await self._follow_pod()
        except Exception as error:
            self.log.exception("stopped following pod=%s", self.pod_name)
            event = self._event("error", f"lost track of the pod: {describe(error)}")
        self._fired_event = True
        yield TriggerEvent(event)

    def _deadline(self) -> float | None:
        deadlines = [
            value
            for value in (self.step_deadline, self.trigger_kwargs.get("_execution_deadline"))
            if value is not None
        ]
        return float(min(deadlines)) if deadlines else None

    async def _follow_pod(self) -> dict[str, Any]:
        for container in [*self.init_containers, self.base_container_name]:
            verdict = await self._await_container_start(container)
            if verdict == StartWatch.FAILED:
                return await self._failure_event("failed")
            if verdict == StartWatch.TIMEOUT:
                pod = await self._read_pod()
                return self._event(
                    "timeout", startup_timeout_message(pod, container, self.startup_timeout), pod
                )
            if self._past_deadline():
                return self._event("timeout", TIMEOUT_MESSAGE)
            await self._follow_container(container)
            if self._past_deadline():
                return self._event("timeout", TIMEOUT_MESSAGE)
            if container != self.base_container_name:
                pod = await self._read_pod()
                if exit_code(pod, container) != 0:
                    return await self._failure_event("failed", pod)
        pod = await self._settled_pod()
        if exit_code(pod, self.base_container_name) == 0:
            return self._event("success", "step succeeded", pod=pod)
        return await self._failure_event("failed", pod)

    def _past_deadline(self) -> bool:
        deadline = self._deadline()
        return deadline is not None and time.time() > deadline

    async def _read_pod(self) -> V1Pod:
        pod: V1Pod = await acall_with_retry(
            lambda: self.hook.get_pod(name=self.pod_name, namespace=self.pod_namespace),
            f"read pod={self.pod_name}",
            logger=self.log,
        )
        return pod

    async def _await_container_start(self, container: str) -> str:
        """Poll until the container runs or ended, cannot start, or waited too long."""
        watch = StartWatch(container, self.schedule_timeout, self.startup_timeout, time.time())
        delay = 0.2
        while True:
            verdict = watch.verdict(await self._read_pod(), time.time())
            if verdict != StartWatch.WAIT:
                return verdict
            if self._past_deadline():
                return StartWatch.STARTED
            await asyncio.sleep(delay)
            delay = min(self.startup_check_interval, delay * 1.5)

    async def _settled_pod(self) -> V1Pod:
        """The pod once it reached a final phase (a few seconds at most after the container)."""
        for _ in range(20):
            pod = await self._read_pod()
            if pod.status is not None and pod.status.phase in ("Succeeded", "Failed"):
                break
            await asyncio.sleep(0.25)
        return pod

    # -- logs --------------------------------------------------------------------------------

    def _follower(self, container: str) -> LogFollower:
        if container not in self._followers:
            self._followers[container] = LogFollower(
                container,
                collect_results=container == self.base_container_name,
                cursor=LogCursor.from_dict(self.log_cursors.get(container)),
            )
        return self._followers[container]

    async def _follow_container(self, container: str) -> None:
        """Log the container's output until it ended (see ``StepPodManager.fetch_container_logs``)."""
        follower = self._follower(container)
        failures = 0
        while True:
            before = follower.lines_shown
            try:
                await self._read_pass(follower, follow=True)
                failures = 0
            except Exception as error:
                # A stream that delivered something before it broke is simply resumed.
                progressed = follower.lines_shown > before
                failures = await self._after_stream_error(
                    container, error, 0 if progressed else failures
                )
                if self._past_deadline():
                    return
                continue
            if self._past_deadline():
                return
            pod = await self._read_pod()
            if not is_running(container_status(pod, container)):
                self._emit(follower.end_pass(complete=True))
                return
            follower.end_pass(complete=False)
            await asyncio.sleep(0.2)

    async def _after_stream_error(self, container: str, error: Exception, failures: int) -> int:
        status = getattr(error, "status", None)
        if status == 400:
            if failures >= MAX_STREAM_FAILURES:
                raise error
            await asyncio.sleep(min(2.0, 0.2 * (failures + 1)))
            return failures + 1
        if not is_transient(error) or failures >= MAX_STREAM_FAILURES:
            raise error
        delay = stream_delay(min(failures, 5), error)
        self.log.warning(
            "log stream of pod=%s container=%s interrupted (%s); resuming in %.1fs",
            self.pod_name,
            container,
            describe(error),
            delay,
        )
        await asyncio.sleep(delay)
        return failures + 1

    async def _read_pass(self, follower: LogFollower, *, follow: bool) -> None:
        """One stream of the log from where the follower stands; the caller ends the pass."""
        from kubernetes_asyncio.client import CoreV1Api
        from kubernetes_asyncio.client.exceptions import ApiException

        since = follower.cursor.since_seconds(time.time())
        kwargs: dict[str, Any] = {}
        if since is not None:
            kwargs["since_seconds"] = since
        read_timeout = FOLLOW_READ_TIMEOUT if follow else READ_TIMEOUT
        deadline = self._deadline()
        if deadline is not None:
            read_timeout = max(1.0, min(read_timeout, deadline - time.time() + 1.0))
        async with self.hook.get_conn() as api_client:
            response: Any = await CoreV1Api(api_client).read_namespaced_pod_log(
                name=self.pod_name,
                namespace=self.pod_namespace,
                container=follower.container,
                follow=follow,
                timestamps=True,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT, read_timeout),
                **kwargs,
            )
            try:
                if not 200 <= response.status <= 299:
                    body = await response.text(errors="replace")
                    error = ApiException(status=response.status, reason=response.reason)
                    error.headers = response.headers
                    error.body = body
                    raise error
                follower.begin_pass()
                async for chunk in response.content.iter_chunked(CHUNK):
                    lines = follower.feed(chunk)
                    if lines:
                        self._emit(lines)
                    if self._past_deadline():
                        return
            finally:
                response.release()

    def _emit(self, lines: list[str]) -> None:
        for record in batches(lines):
            self.log.info("%s", record)

    # -- the event ---------------------------------------------------------------------------

    async def _failure_event(self, status: str, pod: V1Pod | None = None) -> dict[str, Any]:
        if pod is None:
            pod = await self._read_pod()
        try:
            events = await acall_with_retry(
                lambda: self.hook.get_pod_events(self.pod_name, self.pod_namespace),
                f"events of pod={self.pod_name}",
                logger=self.log,
            )
            items = list(events.items or [])
        except Exception as error:
            self.log.warning("cannot read events of pod=%s (%s)", self.pod_name, describe(error))
            items = []
        tails = {name: list(follower.tail) for name, follower in self._followers.items()}
        message = describe_failure(pod, self.base_container_name, events=items, tails=tails)
        return self._event(status, message, pod=pod)

    def _event(self, status: str, message: str, pod: V1Pod | None = None) -> dict[str, Any]:
        main = self._followers.get(self.base_container_name)
        collector = main.collector if main is not None else None
        cursors = {name: f.cursor.to_dict() for name, f in self._followers.items()}
        return {
            "status": status,
            "message": message,
            "name": self.pod_name,
            "namespace": self.pod_namespace,
            "last_log_time": main.cursor.last_text if main is not None else None,
            "details": {
                "results": collector.results if collector is not None else [],
                "result_errors": collector.errors if collector is not None else [],
                "tails": {name: list(f.tail) for name, f in self._followers.items()},
                "cursors": cursors,
                "exit_code": exit_code(pod, self.base_container_name) if pod is not None else None,
                "lines": sum(f.lines_shown for f in self._followers.values()),
            },
        }
