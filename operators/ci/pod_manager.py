"""The provider's PodManager with a log follower that shows every pod line once, in order.

The provider's follower resumes a dropped stream from the last whole second it saw (so lines
may show twice or go missing) and parses levels per line. :class:`StepPodManager` streams the
log line by line with timestamps, remembers exactly where it stopped (full RFC 3339 timestamp
plus how many lines shared it, see :class:`~operators.ci.logstream.LogCursor`), re-reads the
gap after any interruption and skips what it already showed. Memory stays flat whatever the log
size: only the current chunk (at most 64 KiB), the last few lines and the step's result lines
are kept. Lines that arrive together go to the task log as one record of up to 256 lines (one
per line when output trickles in), which keeps a 100 MB log to seconds; every line is there
once, in order.

API calls (pods, events, log streams) are retried on transient answers with
:func:`operators.ci.retry.call_with_retry`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.providers.cncf.kubernetes.utils.pod_manager import PodLoggingStatus, PodManager
from kubernetes.client.exceptions import ApiException

from operators.ci.logstream import LogFollower, batches
from operators.ci.retry import call_with_retry, describe, is_transient, stream_delay

if TYPE_CHECKING:
    from kubernetes.client import CoreV1Api, V1Pod
    from pendulum import DateTime

CONNECT_TIMEOUT = 30.0
FOLLOW_READ_TIMEOUT = 300.0
READ_TIMEOUT = 60.0
MAX_STREAM_FAILURES = 30
CHUNK = 64 * 1024


class StepTimeout(Exception):
    """The step ran past its deadline."""


class StepPodManager(PodManager):
    """PodManager for CI steps: exactly-once log streaming and retried API calls.

    :param kube_client: CoreV1Api of the cluster.
    :param result_container: the container whose ``::sre-result::`` lines are collected.
    :param deadline: epoch seconds after which following the logs raises :class:`StepTimeout`.
    :param callbacks: provider callbacks (passed through).
    """

    def __init__(
        self,
        kube_client: CoreV1Api,
        *,
        result_container: str = "main",
        deadline: float | None = None,
        callbacks: list[Any] | None = None,
    ) -> None:
        super().__init__(kube_client=kube_client, callbacks=callbacks)
        self.result_container = result_container
        self.deadline = deadline
        self.followers: dict[tuple[str, str, str], LogFollower] = {}

    # -- API calls with the project's retry rules --------------------------------------------

    def read_pod(self, pod: V1Pod) -> V1Pod:
        name, namespace = pod.metadata.name, pod.metadata.namespace
        return call_with_retry(
            lambda: self._client.read_namespaced_pod(name, namespace),
            f"read pod={name}",
            logger=self.log,
        )

    def read_pod_events(self, pod: V1Pod, resource_version: str | None = None) -> Any:
        name, namespace = pod.metadata.name, pod.metadata.namespace
        return call_with_retry(
            lambda: self._client.list_namespaced_event(
                namespace=namespace, field_selector=f"involvedObject.name={name}"
            ),
            f"events of pod={name}",
            logger=self.log,
        )

    def delete_pod(self, pod: V1Pod) -> None:
        name, namespace = pod.metadata.name, pod.metadata.namespace

        def delete() -> None:
            try:
                self._client.delete_namespaced_pod(name, namespace)
            except ApiException as err:
                if err.status != 404:
                    raise

        call_with_retry(delete, f"delete pod={name}", logger=self.log)

    def create_pod(self, pod: V1Pod) -> V1Pod:
        """Create the pod; a 409 after a lost answer returns the pod the first try made."""
        body = self._client.api_client.sanitize_for_serialization(pod)
        name, namespace = pod.metadata.name, pod.metadata.namespace
        attempts = {"count": 0}

        def create() -> V1Pod:
            attempts["count"] += 1
            try:
                created: V1Pod = self._client.create_namespaced_pod(namespace=namespace, body=body)
                return created
            except ApiException as err:
                if err.status == 409 and attempts["count"] > 1:
                    existing: V1Pod = self._client.read_namespaced_pod(name, namespace)
                    wanted = pod.metadata.labels or {}
                    if all((existing.metadata.labels or {}).get(k) == v for k, v in wanted.items()):
                        return existing
                raise

        return call_with_retry(create, f"create pod={name}", logger=self.log)

    # -- logs --------------------------------------------------------------------------------

    def follower(self, pod: V1Pod, container: str) -> LogFollower:
        """The follower of one container of one pod (kept across calls and reconnects)."""
        key = (pod.metadata.namespace, pod.metadata.name, container)
        if key not in self.followers:
            self.followers[key] = LogFollower(
                container, collect_results=container == self.result_container
            )
        return self.followers[key]

    def fetch_container_logs(
        self,
        pod: V1Pod,
        container_name: str,
        *,
        follow: bool = False,
        since_time: DateTime | None = None,
        post_termination_timeout: int = 120,
        container_name_log_prefix_enabled: bool = True,
        log_formatter: Callable[[str, str], str] | None = None,
    ) -> PodLoggingStatus:
        """Stream the container's log into the task log until the container has ended.

        A broken stream is reopened from where the follower stands (the re-read overlap is
        skipped); a stream that ends cleanly once the container has ended holds the whole log,
        so only then is an unterminated last line shown.
        """
        follower = self.follower(pod, container_name)
        failures = 0
        while True:
            self._check_deadline()
            before = follower.lines_shown
            try:
                self._read_pass(pod, follower, follow=follow)
                failures = 0
            except Exception as error:
                # A stream that delivered something before it broke is simply resumed.
                progressed = follower.lines_shown > before
                failures = self._after_stream_error(
                    pod, container_name, error, 0 if progressed else failures
                )
                continue
            if not follow or not self.container_is_running(pod, container_name):
                self._emit(follower.end_pass(complete=True))
                break
            follower.end_pass(complete=False)
            time.sleep(0.2)
        last = follower.cursor.last_text
        return PodLoggingStatus(running=False, last_log_time=pendulum.parse(last) if last else None)  # type: ignore[arg-type]

    def _after_stream_error(
        self, pod: V1Pod, container: str, error: Exception, failures: int
    ) -> int:
        if isinstance(error, StepTimeout):
            raise error
        if isinstance(error, ApiException) and error.status == 400:
            # The container has not started yet (or is restarting): wait for it.
            if failures >= MAX_STREAM_FAILURES:
                raise error
            time.sleep(min(2.0, 0.2 * (failures + 1)))
            return failures + 1
        if not is_transient(error) or failures >= MAX_STREAM_FAILURES:
            raise error
        delay = stream_delay(min(failures, 5), error)
        self.log.warning(
            "log stream of pod=%s container=%s interrupted (%s); resuming in %.1fs",
            pod.metadata.name,
            container,
            describe(error),
            delay,
        )
        time.sleep(delay)
        return failures + 1

    def _read_pass(self, pod: V1Pod, follower: LogFollower, *, follow: bool) -> None:
        """One stream of the log from where the follower stands; the caller ends the pass."""
        since = follower.cursor.since_seconds(time.time())
        kwargs: dict[str, Any] = {}
        if since is not None:
            kwargs["since_seconds"] = since
        read_timeout = FOLLOW_READ_TIMEOUT if follow else READ_TIMEOUT
        if self.deadline is not None:
            read_timeout = max(1.0, min(read_timeout, self.deadline - time.time() + 1.0))
        response = self._client.read_namespaced_pod_log(
            name=pod.metadata.name,
            namespace=pod.metadata.namespace,
            container=follower.container,
            follow=follow,
            timestamps=True,
            _preload_content=False,
            _request_timeout=(CONNECT_TIMEOUT, read_timeout),
            **kwargs,
        )
        follower.begin_pass()
        try:
            for chunk in _chunks(response):
                lines = follower.feed(chunk)
                if lines:
                    self._emit(lines)
                self._check_deadline()
        finally:
            response.release_conn()

    def _emit(self, lines: list[str]) -> None:
        for record in batches(lines):
            self.log.info("%s", record)

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.time() > self.deadline:
            raise StepTimeout("the step ran past its time limit")


def _chunks(response: Any) -> Iterator[bytes]:
    """The body of a streamed urllib3 response in pieces of at most :data:`CHUNK` bytes, each as
    soon as it arrives (a server may send a whole backlog as one HTTP chunk)."""
    if getattr(response, "chunked", False) and response.supports_chunked_reads():
        yield from response.read_chunked(amt=CHUNK, decode_content=True)
        return
    while True:
        data = response.read1(CHUNK)
        if not data:
            return
        yield data
