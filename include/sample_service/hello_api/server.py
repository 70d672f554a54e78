"""The HTTP side of hello-api: routes, readiness and a graceful stop on SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qs, urlsplit

from hello_api import __version__
from hello_api.config import ConfigError, Settings
from hello_api.greetings import choose_language, greet

SERVICE = "hello-api"

log = logging.getLogger("hello_api")

Reply = tuple[int, str, bytes]
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Probes arrive every few seconds; they are logged only at DEBUG.
_QUIET_PATHS = frozenset({"/healthz", "/livez"})


class Readiness:
    """Whether the service takes traffic, and the reason when it does not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = "starting"

    def mark_ready(self) -> None:
        with self._lock:
            self._reason = None

    def mark_not_ready(self, reason: str) -> None:
        with self._lock:
            self._reason = reason

    def reason(self) -> str | None:
        """None when ready, else why not."""
        with self._lock:
            return self._reason


def read_build_info(path: Path) -> dict[str, str]:
    """The commit the build baked in; a source checkout has none."""
    info = {"commit": "unknown"}
    try:
        info["commit"] = str(json.loads(path.read_text(encoding="utf-8"))["commit"])
    except Exception:
        pass
    return info


def new_request_id() -> str:
    return f"{random.randrange(16**16):016x}"


def _text(status: int, text: str) -> Reply:
    return status, "text/plain; charset=utf-8", text.encode("utf-8")


def _json(status: int, payload: object) -> Reply:
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return status, "application/json; charset=utf-8", body


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


class HelloHandler(BaseHTTPRequestHandler):
    """One request: route it, answer it, log it as one line."""

    server: HelloServer
    server_version = f"{SERVICE}/{__version__}"
    # A client that stalls mid-request is dropped, so a stop never waits on it for long.
    timeout = 10
    request_id = ""

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_POST(self) -> None:
        status, content_type, body = _json(
            HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method not allowed", "allow": "GET, HEAD"}
        )
        self.send_response(status)
        self.send_header("Allow", "GET, HEAD")
        self._finish(content_type, body, head=False)

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _answer(self, head: bool) -> None:
        url = urlsplit(self.path)
        route = ROUTES.get(url.path)
        try:
            query = parse_qs(url.query, max_num_fields=20)
        except ValueError:
            status, content_type, body = _json(HTTPStatus.BAD_REQUEST, {"error": "bad query"})
        else:
            if route is None:
                status, content_type, body = _json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            else:
                try:
                    status, content_type, body = route(self, query)
                except Exception:
                    log.exception(
                        "request failed path=%s request_id=%s", url.path, self._request_id()
                    )
                    status, content_type, body = _json(
                        HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"}
                    )
        self.send_response(status)
        self._finish(content_type, body, head)

    def _finish(self, content_type: str, body: bytes, head: bool) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def healthz(self, query: dict[str, list[str]]) -> Reply:
        reason = self.server.readiness.reason()
        if reason is None:
            return _text(HTTPStatus.OK, "ok")
        return _text(HTTPStatus.SERVICE_UNAVAILABLE, f"not ready: {reason}")

    def livez(self, query: dict[str, list[str]]) -> Reply:
        return _text(HTTPStatus.OK, "alive")

    def hello(self, query: dict[str, list[str]]) -> Reply:
        language = choose_language(
            _first(query, "lang"),
            self.headers.get("Accept-Language"),
            self.server.settings.default_language,
        )
        return _json(HTTPStatus.OK, greet(_first(query, "name"), language).as_dict())

    def version(self, query: dict[str, list[str]]) -> Reply:
        return _json(
            HTTPStatus.OK,
            {
                "service": SERVICE,
                "version": __version__,
                "commit": self.server.build_info["commit"],
                "environment": self.server.settings.environment,
            },
        )

    def version_string(self) -> str:
        return self.server_version

    def end_headers(self) -> None:
        self.send_header("X-Served-By", self.server.settings.served_by)
        self.send_header("X-Request-Id", self._request_id())
        super().end_headers()

    def _request_id(self) -> str:
        if not self.request_id:
            headers = getattr(self, "headers", None)
            incoming = headers.get("X-Request-Id", "") if headers is not None else ""
            self.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else new_request_id()
        return self.request_id

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # A request line that could not be parsed leaves no path.
        path = urlsplit(getattr(self, "path", "")).path
        level = logging.DEBUG if path in _QUIET_PATHS else logging.INFO
        status = int(code) if isinstance(code, int) else code
        log.log(
            level,
            "request method=%s path=%s status=%s request_id=%s",
            self.command,
            path,
            status,
            self._request_id(),
        )

    def log_error(self, fmt: str, *args: object) -> None:
        log.warning("http error detail=%s", fmt % args)


ROUTES: dict[str, Callable[[HelloHandler, dict[str, list[str]]], Reply]] = {
    "/healthz": HelloHandler.healthz,
    "/livez": HelloHandler.livez,
    "/hello": HelloHandler.hello,
    "/version": HelloHandler.version,
}


class HelloServer(ThreadingHTTPServer):
    """The listening server; requests in flight finish before it closes."""

    daemon_threads = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.readiness = Readiness()
        self.build_info = read_build_info(settings.build_info_path)
        self.address_family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        super().__init__((settings.host, settings.port), HelloHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN; the service has no use for it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.settings.host, self.server_address[1]

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def check_ready(self) -> bool:
        """Take traffic only when the settings allow it; say why not otherwise."""
        problems = self.settings.problems()
        if problems:
            reason = "; ".join(problems)
            self.readiness.mark_not_ready(reason)
            log.warning("not ready reason=%s", reason)
            return False
        self.readiness.mark_ready()
        return True


def main() -> int:
    """Serve until SIGTERM or SIGINT; return the process exit status."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings.from_env(os.environ)
        server = HelloServer(settings)
    except (ConfigError, OSError) as error:
        log.error("cannot start reason=%s", error)
        return 2
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.info("stopping signal=%s", signal.Signals(signum).name)
        server.readiness.mark_not_ready("stopping")
        threading.Thread(target=server.shutdown, name="shutdown").start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.check_ready()
    if settings.host in ("0.0.0.0", "::"):
        log.info("listening on all interfaces host=%s", settings.host)
    log.info(
        "listening host=%s port=%s environment=%s version=%s commit=%s",
        settings.host,
        server.port,
        settings.environment,
        __version__,
        server.build_info["commit"],
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    log.info("stopped")
    return 0
