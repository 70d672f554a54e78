"""SonarQube web API: wait for an analysis (``/api/ce/task``) and read its quality gate.

Connection contract (conn type ``http``, default id ``sonarqube_default``):

- ``host``: the server's base URL, e.g. ``https://sonar.example.com`` (a bare host name gets
  ``schema`` (default https) and ``port`` added);
- ``password``: a user token, sent as HTTP basic user name with an empty password, as SonarQube
  expects; it is never logged.

Calls use ``requests`` with a timeout; 429 (honouring ``Retry-After``), 5xx and connection
errors are retried with backoff, other answers raise :class:`SonarQubeError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import BaseHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

DEFAULT_CONN_ID = "sonarqube_default"
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
PENDING_STATES = frozenset({"PENDING", "IN_PROGRESS"})


class SonarQubeError(RuntimeError):
    """SonarQube answered something that is not a transient failure."""


class SonarQubeClient:
    """A minimal client of the two endpoints the quality gate needs.

    :param base_url: server URL without trailing slash.
    :param token: user token (HTTP basic user name).
    :param timeout: seconds per request.
    :param attempts: tries per call on transient failures.
    """

    def __init__(
        self, base_url: str, token: str | None, *, timeout: float = 10.0, attempts: int = 6
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.attempts = attempts

    @classmethod
    def from_connection(cls, conn: Any) -> SonarQubeClient:
        host = str(conn.host or "")
        if "://" not in host:
            if not host:
                raise SonarQubeError(f"connection {conn.conn_id}: no host (the SonarQube URL)")
            scheme = conn.schema or "https"
            host = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        return cls(host, conn.password or None)

    def ce_task(self, task_id: str) -> dict[str, Any]:
        """The background task of an analysis: ``status``, ``analysisId``, ``errorMessage``."""
        task: dict[str, Any] = self._get("/api/ce/task", {"id": task_id}).get("task") or {}
        if not task:
            raise SonarQubeError(f"SonarQube returned no task for id {task_id}")
        return task

    def project_status(self, analysis_id: str) -> dict[str, Any]:
        """The quality gate of an analysis: ``status`` (OK, WARN, ERROR, NONE), ``conditions``."""
        status: dict[str, Any] = (
            self._get("/api/qualitygates/project_status", {"analysisId": analysis_id}).get(
                "projectStatus"
            )
            or {}
        )
        if not status:
            raise SonarQubeError(f"SonarQube returned no gate for analysis {analysis_id}")
        return status

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        import requests

        from operators.ci.retry import backoff_delay

        url = self.base_url + path
        auth = (self.token, "") if self.token else None
        last: str = ""
        for attempt in range(self.attempts):
            delay: float | None = None
            try:
                response = requests.get(url, params=params, auth=auth, timeout=self.timeout)
            except requests.RequestException as err:
                last = f"{type(err).__name__}: {err}"
                delay = backoff_delay(attempt)
            else:
                if response.status_code in TRANSIENT_STATUS:
                    last = f"HTTP {response.status_code}"
                    delay = _retry_after(response) or backoff_delay(attempt)
                elif response.status_code >= 400:
                    raise SonarQubeError(
                        f"SonarQube {path} answered HTTP {response.status_code}: "
                        f"{_error_text(response)}"
                    )
                else:
                    try:
                        body: dict[str, Any] = response.json()
                    except ValueError:
                        raise SonarQubeError(f"SonarQube {path} answered non-JSON") from None
                    return body
            if attempt + 1 < self.attempts:
                time.sleep(delay)
        raise SonarQubeError(f"SonarQube {path} kept failing ({last}) after {self.attempts} tries")


def _retry_after(response: Any) -> float | None:
    try:
        return min(float(response.headers.get("Retry-After", "")), 60.0)
    except ValueError:
        return None


def _error_text(response: Any) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(str(e.get("msg")) for e in errors) or response.text[:200]
    except ValueError:
        return str(response.text[:200])


class SonarQubeHook(BaseHook):
    """The SonarQube server of a connection (see the module docstring for its fields).

    :param sonarqube_conn_id: the Airflow connection id.
    """

    conn_name_attr = "sonarqube_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "http"
    hook_name = "SonarQube"

    def __init__(self, sonarqube_conn_id: str = DEFAULT_CONN_ID) -> None:
        super().__init__()
        self.sonarqube_conn_id = sonarqube_conn_id

    def get_conn(self) -> SonarQubeClient:
        return SonarQubeClient.from_connection(self.get_connection(self.sonarqube_conn_id))


def gate_event(
    status: str, message: str, task: dict[str, Any] | None, gate: dict[str, Any] | None
) -> dict[str, Any]:
    """The one event shape of the SonarQube wait, in the trigger and in the synchronous path."""
    return {"status": status, "message": message, "details": {"task": task, "gate": gate}}


def poll_once(client: SonarQubeClient, task_id: str) -> dict[str, Any] | None:
    """One look at the analysis: None while it is still running, else the final event."""
    task = client.ce_task(task_id)
    state = str(task.get("status"))
    if state in PENDING_STATES:
        return None
    if state != "SUCCESS":
        reason = task.get("errorMessage") or "no reason given"
        return gate_event("failed", f"SonarQube analysis {state}: {reason}", task, None)
    analysis = task.get("analysisId")
    if not analysis:
        return gate_event(
            "failed", "SonarQube analysis succeeded without an analysisId", task, None
        )
    gate = client.project_status(str(analysis))
    return gate_event("success", f"SonarQube gate {gate.get('status')}", task, gate)


class SonarQubeGateTrigger(BaseTrigger):
    """Wait in the triggerer for a SonarQube analysis, then read its quality gate.

    :param conn_id: the SonarQube connection.
    :param ce_task_id: the analysis task id the scanner reported.
    :param poll_interval: seconds between looks.
    :param deadline: epoch seconds after which the wait ends with status ``timeout``.
    """

    def __init__(
        self,
        conn_id: str,
        ce_task_id: str,
        poll_interval: float = 5.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.ce_task_id = ce_task_id
        self.poll_interval = poll_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "ce_task_id": self.ce_task_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.common.compat.connection import get_async_connection

        try:
            client = SonarQubeClient.from_connection(await get_async_connection(self.conn_id))
            while True:
                event = await asyncio.to_thread(poll_once, client, self.ce_task_id)
                if event is not None:
                    break
                if self.deadline is not None and time.time() > self.deadline:
                    event = gate_event(
                        "timeout",
                        f"SonarQube task {self.ce_task_id} did not finish in time",
                        None,
                        None,
                    )
                    break
                self.log.info("SonarQube analysis task=%s still running", self.ce_task_id)
                await asyncio.sleep(self.poll_interval)
        except Exception as err:
            event = gate_event("error", f"cannot read SonarQube: {err}", None, None)
        yield TriggerEvent(event)
