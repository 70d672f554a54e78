"""The SonarQube stand-in's HTTP server (see the package docstring)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PENDING = ("PENDING", "IN_PROGRESS")


class SonarQubeStandIn:
    """State of the stand-in: tasks, gates, queued faults and the request log."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or "squ_" + secrets.token_hex(16)
        self.tasks: dict[str, dict[str, Any]] = {}
        self.gates: dict[str, dict[str, Any]] = {}
        self.faults: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.url = ""
        self._server: ThreadingHTTPServer | None = None

    # -- configuration ------------------------------------------------------------------------

    def add_task(
        self,
        task_id: str,
        statuses: list[str],
        analysis_id: str | None = None,
        *,
        component: str = "project",
        error_message: str | None = None,
    ) -> None:
        with self.lock:
            self.tasks[task_id] = {
                "statuses": list(statuses),
                "step": 0,
                "analysis_id": analysis_id,
                "component": component,
                "error_message": error_message,
            }

    def set_gate(
        self, analysis_id: str, status: str, conditions: list[dict[str, Any]] | None = None
    ) -> None:
        with self.lock:
            self.gates[analysis_id] = {"status": status, "conditions": list(conditions or [])}

    def add_fault(self, status: int, count: int = 1, retry_after: int | None = None) -> None:
        with self.lock:
            self.faults.append({"status": status, "count": count, "retry_after": retry_after})

    # -- answers -------------------------------------------------------------------------------

    def _next_fault(self) -> dict[str, Any] | None:
        with self.lock:
            for fault in self.faults:
                if fault["count"] > 0:
                    fault["count"] -= 1
                    return fault
        return None

    def ce_task(self, task_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None:
                return 404, {"errors": [{"msg": f"No activity found for task '{task_id}'"}]}
            statuses = task["statuses"]
            status = statuses[min(task["step"], len(statuses) - 1)]
            task["step"] += 1
        body: dict[str, Any] = {
            "id": task_id,
            "type": "REPORT",
            "componentKey": task["component"],
            "status": status,
            "submittedAt": "2026-12-04T10:00:00+0000",
        }
        if status not in PENDING:
            body["executedAt"] = "2026-12-04T10:00:05+0000"
        if status == "SUCCESS" and task["analysis_id"]:
            body["analysisId"] = task["analysis_id"]
        if status == "FAILED":
            body["errorMessage"] = task["error_message"] or "Analysis failed"
        return 200, {"task": body}

    def project_status(self, analysis_id: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            gate = self.gates.get(analysis_id)
        if gate is None:
            return 404, {"errors": [{"msg": f"Analysis with id '{analysis_id}' is not found"}]}
        return 200, {
            "projectStatus": {
                "status": gate["status"],
                "conditions": gate["conditions"],
                "ignoredConditions": False,
            }
        }

    def authorized(self, header: str | None) -> bool:
        if not header:
            return False
        if header.startswith("Bearer "):
            return header[7:] == self.token
        if header.startswith("Basic "):
            try:
                user = base64.b64decode(header[6:]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                return False
            return user == self.token
        return False

    # -- the server ----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        state = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path == "/sandbox/requests":
                    with state.lock:
                        self._send(200, {"requests": list(state.requests)})
                    return
                with state.lock:
                    state.requests.append(self.path)
                fault = state._next_fault()
                if fault is not None:
                    headers = (
                        {"Retry-After": str(fault["retry_after"])} if fault["retry_after"] else {}
                    )
                    self._send(fault["status"], {"errors": [{"msg": "stand-in fault"}]}, headers)
                    return
                if not state.authorized(self.headers.get("Authorization")):
                    self._send(401, {"errors": [{"msg": "Authentication required"}]})
                    return
                if parts.path == "/api/ce/task":
                    self._send(*state.ce_task(query.get("id", "")))
                elif parts.path == "/api/qualitygates/project_status":
                    self._send(*state.project_status(query.get("analysisId", "")))
                else:
                    self._send(404, {"errors": [{"msg": f"Unknown url: {parts.path}"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                    if self.path == "/sandbox/tasks":
                        state.add_task(
                            body["id"],
                            body["statuses"],
                            body.get("analysis_id"),
                            component=body.get("component", "project"),
                            error_message=body.get("error_message"),
                        )
                    elif self.path == "/sandbox/gates":
                        state.set_gate(body["analysis_id"], body["status"], body.get("conditions"))
                    elif self.path == "/sandbox/faults":
                        state.add_fault(
                            body["status"], body.get("count", 1), body.get("retry_after")
                        )
                    else:
                        self._send(404, {"errors": [{"msg": "unknown admin path"}]})
                        return
                except (KeyError, ValueError, TypeError) as err:
                    self._send(400, {"errors": [{"msg": f"bad request: {err}"}]})
                    return
                self._send(200, {"ok": True})

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, name="sonarqube", daemon=True)
        thread.start()
        self.url = f"http://{host}:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def run_sonarqube(token: str | None = None) -> Iterator[SonarQubeStandIn]:
    """A running stand-in on a free loopback port, stopped on exit."""
    stand_in = SonarQubeStandIn(token)
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()
