"""The HTTP side of the Elasticsearch stand-in: routing, content negotiation, faults.

One :class:`EsStandIn` is one node: a threaded ``http.server`` on its own thread with HTTP/1.1
keep-alive (the client pools connections). Every answer carries ``X-Elastic-Product:
Elasticsearch``; ``compatible-with`` media types are accepted for the emulated major version and
the one before it, and refused with the 400 ``media_type_header_exception`` of a real node
otherwise.

Admin endpoints (never faulted): ``GET|PUT|DELETE /_sandbox/faults``, ``GET|DELETE
/_sandbox/requests``, ``POST /_sandbox/reset``.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sandbox.es.query import run_search
from sandbox.es.store import EsError, Store

DEFAULT_VERSION = "9.5.1"
_COMPAT = re.compile(r"compatible-with\s*=\s*(\d+)")
_REQUEST_LOG_SIZE = 10_000
_BODY_HEAD = 2048


@dataclass
class Fault:
    """One injected fault.

    ``mode`` is ``down`` (the connection is dropped without an answer), ``slow`` (answered
    correctly after ``delay`` seconds) or ``status`` (answered with ``status``, e.g. 429, and an
    Elasticsearch error body). Each of these narrows the fault: ``path``, a regular expression
    searched in the request path; ``method``; ``body``, a string the request body must contain
    (e.g. one task's log_id, to fault only its upload); ``min_bytes``, a size the body must exceed
    (``status`` 413 with ``min_bytes`` is a node refusing large bulk bodies). ``times`` counts how
    many requests it hits (None: until cleared).
    """

    mode: str
    status: int = 503
    delay: float = 0.0
    path: str | None = None
    method: str | None = None
    body: str | None = None
    min_bytes: int | None = None
    times: int | None = None
    retry_after: float | None = None

    def applies(self, method: str, path: str, raw: bytes) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method and self.method.upper() != method:
            return False
        if self.path and not re.search(self.path, path):
            return False
        if self.min_bytes is not None and len(raw) <= self.min_bytes:
            return False
        return not (self.body and self.body.encode("utf-8") not in raw)

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> Fault:
        mode = spec.get("mode")
        if mode not in ("down", "slow", "status"):
            raise EsError(
                400, "illegal_argument_exception", "fault mode must be down, slow or status"
            )
        known = {
            "mode",
            "status",
            "delay",
            "path",
            "method",
            "body",
            "min_bytes",
            "times",
            "retry_after",
        }
        unknown = set(spec) - known
        if unknown:
            raise EsError(
                400, "illegal_argument_exception", f"unknown fault fields {sorted(unknown)}"
            )
        return cls(**spec)


class Faults:
    """The fault book of one node: faults in order, and the body size limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.max_body_bytes: int | None = None

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.max_body_bytes = None

    def take(self, method: str, path: str, raw: bytes) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.applies(method, path, raw):
                    if fault.times is not None:
                        fault.times -= 1
                    return Fault(**asdict(fault))
            return None

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "faults": [asdict(f) for f in self._faults],
                "max_body_bytes": self.max_body_bytes,
            }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], node: EsStandIn) -> None:
        self.node = node
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)


class EsStandIn:
    """One stand-in node: a store, a fault book, a request log and the HTTP server."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, version: str = DEFAULT_VERSION
    ) -> None:
        self.host = host
        self.port = port
        self.version = version
        self.major = int(version.split(".")[0])
        self.store = Store()
        self.faults = Faults()
        self.requests: deque[dict[str, Any]] = deque(maxlen=_REQUEST_LOG_SIZE)
        self.cluster_uuid = uuid.uuid4().hex[:22]
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        self._server = _Server((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.connections_lock:
            for sock in list(server.open_connections):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def accepted_majors(self) -> set[int]:
        return {self.major, self.major - 1}

    def info(self) -> dict[str, Any]:
        return {
            "name": "sandbox-es",
            "cluster_name": "sandbox",
            "cluster_uuid": self.cluster_uuid,
            "version": {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "docker",
                "build_snapshot": False,
                "lucene_version": "10.0.0",
                "minimum_wire_compatibility_version": f"{self.major - 1}.19.0",
                "minimum_index_compatibility_version": f"{self.major - 1}.0.0",
            },
            "tagline": "You Know, for Search",
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        node = self.server.node
        started = time.monotonic()
        split = urlsplit(self.path)
        path = split.path
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        record: dict[str, Any] = {
            "method": method,
            "path": path,
            "params": params,
            "time": time.time(),
        }
        admin = path.startswith("/_sandbox")
        limit = None if admin else node.faults.max_body_bytes
        length = int(self.headers.get("Content-Length") or 0)
        record["bytes_in"] = length
        if limit is not None and length > limit:
            self._drain_body()
            record.update(status=413, fault="body_too_large")
            node.requests.append(record)
            self._send(413, None, method, close=True)
            return
        raw = self._read_body()
        record["accept"] = self.headers.get("Accept")
        record["body_head"] = raw[:_BODY_HEAD].decode("utf-8", errors="replace")
        fault = None if admin else node.faults.take(method, path, raw)
        if fault is not None and fault.mode == "slow":
            time.sleep(fault.delay)
        if fault is not None and fault.mode == "down":
            record.update(status=None, fault="down")
            node.requests.append(record)
            self.close_connection = True
            return
        status: int
        payload: Any
        try:
            self._negotiate(node)
            if fault is not None and fault.mode == "status":
                if fault.status == 413:
                    record.update(status=413, fault="status")
                    node.requests.append(record)
                    self._send(413, None, method, close=True)
                    return
                raise EsError(
                    fault.status, _status_type(fault.status), _status_reason(fault.status)
                )
            status, payload = _route(node, method, path, params, raw, self.headers)
        except EsError as err:
            status, payload = err.status, err.body()
            if fault is not None and fault.mode == "status" and fault.retry_after is not None:
                self._retry_after = fault.retry_after
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
            status, payload = (
                400,
                EsError(400, "parsing_exception", f"failed to parse request body: {err}").body(),
            )
        record.update(status=status, duration=round(time.monotonic() - started, 4))
        if fault is not None:
            record["fault"] = fault.mode
        node.requests.append(record)
        self._send(status, payload, method)

    def _negotiate(self, node: EsStandIn) -> None:
        accept = self.headers.get("Accept", "") or ""
        content_type = self.headers.get("Content-Type", "") or ""
        asked = {
            name: int(m.group(1))
            for name, value in (("Accept", accept), ("Content-Type", content_type))
            if (m := _COMPAT.search(value))
        }
        self._compat = None
        if not asked:
            return
        versions = set(asked.values())
        allowed = node.accepted_majors()
        if len(versions) > 1 or not versions <= allowed:
            wanted = sorted(allowed, reverse=True)
            raise EsError(
                400,
                "media_type_header_exception",
                "Invalid media-type value on headers [Accept, Content-Type]",
                caused_by={
                    "type": "status_exception",
                    "reason": f"Accept version must be either version {wanted[0]} or {wanted[1]}, but "
                    f"found {max(versions)}. Accept={accept}",
                },
            )
        self._compat = asked.get("Accept")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            data = b"".join(chunks)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip" and data:
            data = gzip.decompress(data)
        return data

    def _drain_body(self) -> None:
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)

    def _send(self, status: int, payload: Any, method: str, *, close: bool = False) -> None:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        compat = getattr(self, "_compat", None)
        if compat is not None:
            self.send_header(
                "Content-Type", f"application/vnd.elasticsearch+json;compatible-with={compat}"
            )
        else:
            self.send_header("Content-Type", "application/json")
        retry_after = getattr(self, "_retry_after", None)
        if retry_after is not None:
            self.send_header("Retry-After", str(int(retry_after)))
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if method != "HEAD" and body:
            self.wfile.write(body)
        self._compat = None
        self._retry_after = None


def _status_type(status: int) -> str:
    return {
        429: "es_rejected_execution_exception",
        503: "cluster_block_exception",
        500: "internal_server_error",
    }.get(status, "status_exception")


def _status_reason(status: int) -> str:
    if status == 429:
        return "rejected execution of coordinating operation [coordinating_and_primary_bytes=0]"
    if status == 503:
        return "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];"
    return f"injected fault with status {status}"


def _json_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    body = json.loads(raw.decode("utf-8"))
    if not isinstance(body, dict):
        raise EsError(400, "parsing_exception", "request body must be a JSON object")
    return body


def _flag(params: dict[str, str], name: str) -> bool:
    return params.get(name, "false").lower() in ("", "true")


def _route(
    node: EsStandIn, method: str, path: str, params: dict[str, str], raw: bytes, headers: Any
) -> tuple[int, Any]:
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    store = node.store
    if not parts:
        if method in ("GET", "HEAD"):
            return 200, node.info()
        raise _no_handler(method, path)
    head = parts[0]
    if head == "_sandbox":
        return _admin(node, method, parts[1:], raw)
    if head == "_cluster" and parts[1:] == ["health"] and method == "GET":
        return 200, {
            "cluster_name": "sandbox",
            "status": "green",
            "number_of_nodes": 1,
            "active_shards": len(store.indices),
        }
    if head == "_index_template":
        return _templates(store, method, parts[1:], raw)
    if head in ("_bulk", "_search", "_count", "_refresh"):
        return _collection_action(store, method, head, "*", params, raw, default_index=None)
    if len(parts) >= 2 and parts[1] in ("_bulk", "_search", "_count", "_refresh"):
        return _collection_action(store, method, parts[1], head, params, raw, default_index=head)
    if len(parts) >= 2 and parts[1] in ("_doc", "_create"):
        return _document(
            store, method, head, parts[1], parts[2] if len(parts) > 2 else None, params, raw
        )
    if len(parts) == 2 and parts[1] == "_mapping" and method == "GET":
        return 200, {i.name: {"mappings": i.mappings} for i in store.resolve(head)}
    if len(parts) == 1:
        return _index(store, method, head, params, raw)
    raise _no_handler(method, path)


def _no_handler(method: str, path: str) -> EsError:
    return EsError(
        400,
        "illegal_argument_exception",
        f"no handler found for uri [{path}] and method [{method}]",
    )


def _admin(node: EsStandIn, method: str, parts: list[str], raw: bytes) -> tuple[int, Any]:
    if parts == ["faults"]:
        if method == "GET":
            return 200, node.faults.describe()
        if method in ("PUT", "POST"):
            body = _json_body(raw)
            if "max_body_bytes" in body:
                limit = body.pop("max_body_bytes")
                node.faults.max_body_bytes = int(limit) if limit is not None else None
            if body:
                node.faults.add(Fault.from_json(body))
            return 200, node.faults.describe()
        if method == "DELETE":
            node.faults.clear()
            return 200, node.faults.describe()
    if parts == ["requests"]:
        if method == "GET":
            return 200, {"requests": list(node.requests)}
        if method == "DELETE":
            node.requests.clear()
            return 200, {"requests": []}
    if parts == ["reset"] and method == "POST":
        node.store.reset()
        node.faults.clear()
        node.requests.clear()
        return 200, {"acknowledged": True}
    raise _no_handler(method, "/_sandbox/" + "/".join(parts))


def _templates(store: Store, method: str, parts: list[str], raw: bytes) -> tuple[int, Any]:
    if not parts:
        if method == "GET":
            return 200, {
                "index_templates": [
                    {"name": n, "index_template": t} for n, t in sorted(store.templates.items())
                ]
            }
        raise _no_handler(method, "/_index_template")
    name = parts[0]
    if method in ("PUT", "POST"):
        store.put_template(name, _json_body(raw))
        return 200, {"acknowledged": True}
    if method == "HEAD":
        return (200 if name in store.templates else 404), None
    if method == "GET":
        if name not in store.templates:
            raise EsError(
                404, "resource_not_found_exception", f"index template matching [{name}] not found"
            )
        return 200, {"index_templates": [{"name": name, "index_template": store.templates[name]}]}
    if method == "DELETE":
        if store.templates.pop(name, None) is None:
            raise EsError(
                404, "index_template_missing_exception", f"index_template [{name}] missing"
            )
        return 200, {"acknowledged": True}
    raise _no_handler(method, f"/_index_template/{name}")


def _index(
    store: Store, method: str, name: str, params: dict[str, str], raw: bytes
) -> tuple[int, Any]:
    if method == "PUT":
        index = store.create_index(name, _json_body(raw))
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": index.name}
    if method == "HEAD":
        try:
            found = store.resolve(name, allow_no_indices=False)
        except EsError:
            return 404, None
        return (200 if found else 404), None
    if method == "GET":
        return 200, {
            i.name: {
                "aliases": {},
                "mappings": i.mappings,
                "settings": {
                    "index": {"number_of_shards": "1", **{k: str(v) for k, v in i.settings.items()}}
                },
            }
            for i in store.resolve(name, ignore_unavailable=_flag(params, "ignore_unavailable"))
        }
    if method == "DELETE":
        store.resolve(name, ignore_unavailable=_flag(params, "ignore_unavailable"))
        store.delete_indices(name)
        return 200, {"acknowledged": True}
    raise _no_handler(method, f"/{name}")


def _document(
    store: Store,
    method: str,
    index_name: str,
    kind: str,
    doc_id: str | None,
    params: dict[str, str],
    raw: bytes,
) -> tuple[int, Any]:
    if method in ("PUT", "POST"):
        create_only = kind == "_create" or params.get("op_type") == "create"
        index, chosen, result = store.index_document(
            index_name, _json_body(raw), doc_id, create_only=create_only
        )
        return (201 if result == "created" else 200), _write_result(index.name, chosen, result)
    if doc_id is None:
        raise _no_handler(method, f"/{index_name}/{kind}")
    with store.lock:
        index = store.resolve(index_name)[0]
        position = index.ids.get(doc_id)
        doc = index.docs[position] if position is not None else None
        if method == "DELETE":
            removed = index.delete(doc_id)
            return (200 if removed else 404), _write_result(
                index.name, doc_id, "deleted" if removed else "not_found"
            )
    if method == "HEAD":
        return (200 if doc else 404), None
    if method == "GET":
        if doc is None:
            return 404, {"_index": index.name, "_id": doc_id, "found": False}
        return 200, {
            "_index": index.name,
            "_id": doc_id,
            "_version": doc.version,
            "_seq_no": doc.seq_no,
            "_primary_term": 1,
            "found": True,
            "_source": doc.source,
        }
    raise _no_handler(method, f"/{index_name}/{kind}/{doc_id}")


def _write_result(index: str, doc_id: str, result: str) -> dict[str, Any]:
    return {
        "_index": index,
        "_id": doc_id,
        "_version": 1,
        "result": result,
        "_shards": {"total": 1, "successful": 1, "failed": 0},
        "_seq_no": 0,
        "_primary_term": 1,
    }


def _collection_action(
    store: Store,
    method: str,
    action: str,
    expression: str,
    params: dict[str, str],
    raw: bytes,
    *,
    default_index: str | None,
) -> tuple[int, Any]:
    if action == "_bulk":
        if method not in ("POST", "PUT"):
            raise _no_handler(method, "/_bulk")
        return 200, _bulk(store, raw, default_index)
    if action == "_refresh":
        indices = store.resolve(expression, ignore_unavailable=_flag(params, "ignore_unavailable"))
        count = len(indices)
        return 200, {"_shards": {"total": count, "successful": count, "failed": 0}}
    if method not in ("GET", "POST"):
        raise _no_handler(method, f"/{action}")
    body = _json_body(raw)
    with store.lock:
        indices = store.resolve(
            expression,
            ignore_unavailable=_flag(params, "ignore_unavailable"),
            allow_no_indices=params.get("allow_no_indices", "true").lower() != "false",
        )
        return 200, run_search(indices, body, params, count_only=action == "_count")


def _bulk(store: Store, raw: bytes, default_index: str | None) -> dict[str, Any]:
    started = time.monotonic()
    lines = raw.decode("utf-8").split("\n")
    items: list[dict[str, Any]] = []
    errors = False
    position = 0
    while position < len(lines):
        line = lines[position].strip()
        position += 1
        if not line:
            continue
        action = json.loads(line)
        if not isinstance(action, dict) or len(action) != 1:
            raise EsError(
                400, "illegal_argument_exception", f"Malformed action/metadata line [{position}]"
            )
        op, meta = next(iter(action.items()))
        if op not in ("index", "create", "delete"):
            raise EsError(
                400, "illegal_argument_exception", f"Unknown action [{op}] at line [{position}]"
            )
        index_name = meta.get("_index") or default_index
        doc_id = meta.get("_id")
        if index_name is None:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: index is missing;",
            )
        if op == "delete":
            item = _bulk_delete(store, index_name, doc_id)
        else:
            if position >= len(lines):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    "The bulk request must be terminated by a newline [\\n]",
                )
            source = json.loads(lines[position])
            position += 1
            item = _bulk_write(store, op, index_name, source, doc_id)
        errors = errors or "error" in item
        items.append({op: item})
    return {"errors": errors, "took": int((time.monotonic() - started) * 1000), "items": items}


def _bulk_write(
    store: Store, op: str, index_name: str, source: Any, doc_id: str | None
) -> dict[str, Any]:
    try:
        index, chosen, result = store.index_document(
            index_name,
            source,
            str(doc_id) if doc_id is not None else None,
            create_only=op == "create",
        )
    except EsError as err:
        return {
            "_index": index_name,
            "_id": doc_id,
            "status": err.status,
            "error": err.body()["error"]["root_cause"][0],
        }
    status = 201 if result == "created" else 200
    return {**_write_result(index.name, chosen, result), "status": status}


def _bulk_delete(store: Store, index_name: str, doc_id: str | None) -> dict[str, Any]:
    with store.lock:
        index = store.indices.get(index_name)
        removed = bool(index and doc_id and index.delete(str(doc_id)))
    return {
        **_write_result(index_name, str(doc_id), "deleted" if removed else "not_found"),
        "status": 200 if removed else 404,
    }
