"""In-process helpers for tests and the demo: the stand-in gateway and tiny site backends.

``run_gateway()`` starts :class:`sandbox.gateway.server.Gateway` on its own event loop thread;
``run_backend(site)`` starts a small HTTP server that answers with its site name, so traffic
splits can be seen. Both stop when their ``with`` block ends.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

from sandbox.gateway.server import Gateway

DEFAULT_ADMIN_KEY = "sandbox-admin-key-0123456789"


def connection_env(conn_id: str, uri_or_json: dict[str, Any]) -> dict[str, str]:
    """``{"AIRFLOW_CONN_<ID>": json}`` for an Airflow connection given as a dict."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(uri_or_json)}


@dataclass
class RunningGateway:
    """A started stand-in gateway: its URLs and helpers to steer it."""

    admin: str
    proxy: str
    metrics: str
    admin_key: str | None
    gateway: Gateway

    def set_fault(
        self,
        mode: str,
        *,
        seconds: float | None = None,
        requests_count: int | None = None,
        retry_after: float | None = None,
        delay_seconds: float = 0.0,
        methods: list[str] | None = None,
    ) -> dict[str, Any]:
        """Make the admin API answer ``mode`` (503, 429, drop, delay) for some seconds or requests."""
        spec = {
            "methods": methods,
            "mode": mode,
            "seconds": seconds,
            "requests": requests_count,
            "retry_after": retry_after,
            "delay_seconds": delay_seconds,
        }
        answer = requests.put(f"{self.admin}/sandbox/faults", json=spec, timeout=5)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def clear_fault(self) -> None:
        requests.delete(f"{self.admin}/sandbox/faults", timeout=5).raise_for_status()

    def admin_requests(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.admin}/sandbox/requests", timeout=5)
        answer.raise_for_status()
        calls: list[dict[str, Any]] = answer.json()["requests"]
        return calls

    def connection(self, timeout: float = 5.0) -> dict[str, Any]:
        """The gateway admin connection as Airflow takes it (conn type http)."""
        parts = urlsplit(self.admin)
        return {
            "conn_type": "http",
            "host": parts.hostname,
            "port": parts.port,
            "schema": parts.scheme,
            "password": self.admin_key,
            "extra": {"metrics_url": self.metrics, "timeout": timeout},
        }

    def connection_env(
        self, conn_id: str = "gateway_admin", timeout: float = 5.0
    ) -> dict[str, str]:
        return connection_env(conn_id, self.connection(timeout))


@contextmanager
def run_gateway(
    admin_key: str | None = DEFAULT_ADMIN_KEY,
    *,
    host: str = "127.0.0.1",
    upstream_addr_label: bool = True,
) -> Iterator[RunningGateway]:
    """Run the stand-in gateway on a thread for the duration of the block."""
    gateway = Gateway(admin_key, host=host, upstream_addr_label=upstream_addr_label)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(gateway.start())
        except BaseException as err:
            failure.append(err)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(gateway.stop())
        loop.close()

    thread = threading.Thread(target=serve, name="sandbox-gateway", daemon=True)
    thread.start()
    if not ready.wait(15) or failure:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        raise RuntimeError(
            f"the stand-in gateway did not start: {failure[0] if failure else 'timeout'}"
        )
    try:
        yield RunningGateway(
            admin=gateway.urls["admin"],
            proxy=gateway.urls["proxy"],
            metrics=gateway.urls["metrics"],
            admin_key=admin_key,
            gateway=gateway,
        )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)


@dataclass
class SiteBackend:
    """A site's HTTP entry in miniature: answers every path with its site name.

    ``error_ratio`` of the non-health requests answer 500, spread evenly (deterministic);
    ``health_path`` answers ``health_status``/``health_body`` (503 for the first
    ``health_fail_first`` calls); every answer carries ``X-Site``.
    Attributes may be changed while it runs.
    """

    site: str
    health_path: str = "/healthz"
    health_status: int = 200
    health_body: str = "ok"
    error_ratio: float = 0.0
    delay_seconds: float = 0.0
    health_fail_first: int = 0
    url: str = ""
    hosts_seen: Counter[str] = field(default_factory=Counter)
    served: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 80)

    @property
    def host(self) -> str:
        return str(urlsplit(self.url).hostname)

    def connection(self) -> dict[str, Any]:
        """The site's ingress connection as Airflow takes it (conn type http)."""
        return {"conn_type": "http", "host": self.host, "port": self.port, "schema": "http"}

    def answer(self, path: str, host: str) -> tuple[int, str]:
        with self.lock:
            self.hosts_seen[host] += 1
            if path.split("?", 1)[0] == self.health_path:
                if self.health_fail_first > 0:
                    self.health_fail_first -= 1
                    return 503, "starting\n"
                return self.health_status, self.health_body
            self.served += 1
            due = int(self.served * self.error_ratio) - int((self.served - 1) * self.error_ratio)
            if due > 0:
                self.failed += 1
                return 500, f"{self.site} failed\n"
            return 200, f"{self.site}\n"


@contextmanager
def run_backend(site: str, *, host: str = "127.0.0.1", **settings: Any) -> Iterator[SiteBackend]:
    """Run a :class:`SiteBackend` on loopback for the duration of the block."""
    backend = SiteBackend(site=site, **settings)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if backend.delay_seconds:
                threading.Event().wait(backend.delay_seconds)
            status, text = backend.answer(self.path, self.headers.get("Host", ""))
            data = text.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Site", backend.site)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    backend.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"backend-{site}",
        daemon=True,
    )
    thread.start()
    try:
        yield backend
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
