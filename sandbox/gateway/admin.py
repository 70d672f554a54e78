"""The Admin API v3 subset of the stand-in gateway: upstreams and routes in memory.

Shapes follow APISIX: a single resource answers ``{"key", "value", "createdIndex",
"modifiedIndex"}``; a list answers ``{"total", "list"}``; a missing one ``404 {"message": "Key
not found"}``; invalid input ``400 {"error_msg": ...}``. PUT creates (201) or replaces (200);
PATCH merges like APISIX (objects key by key, lists replaced whole, ``null`` deletes) and
``PATCH /{id}/{path}`` replaces one field; DELETE answers ``{"deleted": "1", "key"}``.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

KINDS = ("upstreams", "routes")
_ID = re.compile(r"^[a-zA-Z0-9-_.]{1,64}$")
_NODE_KEY = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^:\[\]]+)(?::(\d{1,5}))?$")


class AdminError(Exception):
    """An admin call that APISIX would refuse: HTTP status and body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def invalid(message: str) -> AdminError:
    return AdminError(400, {"error_msg": f"invalid configuration: {message}"})


def not_found() -> AdminError:
    return AdminError(404, {"message": "Key not found"})


def merge(origin: Any, extend: dict[str, Any]) -> Any:
    """APISIX's table merge: objects merge key by key, a list-valued field is replaced whole."""
    for key, value in extend.items():
        if value is None:
            origin.pop(key, None)
        elif isinstance(value, dict) and isinstance(origin.get(key), dict):
            merge(origin[key], value)
        elif isinstance(value, list) and isinstance(origin.get(key), dict):
            merge(origin[key], {str(i + 1): item for i, item in enumerate(value)})
        else:
            origin[key] = copy.deepcopy(value)
    return origin


@dataclass(frozen=True)
class Node:
    host: str
    port: int
    weight: int

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_nodes(nodes: Any, scheme: str = "http") -> list[Node]:
    """Nodes of an upstream in either form; raises AdminError on a malformed one."""
    default_port = 443 if scheme == "https" else 80
    result: list[Node] = []
    if isinstance(nodes, dict):
        for key, weight in nodes.items():
            match = _NODE_KEY.match(str(key))
            if not match:
                raise invalid(f'property "nodes" validation failed: bad node address {key!r}')
            _check_weight(weight)
            host = match.group(1).strip("[]")
            port = int(match.group(2)) if match.group(2) else default_port
            result.append(Node(host=host, port=port, weight=weight))
        return result
    if isinstance(nodes, list):
        for node in nodes:
            if not isinstance(node, dict) or not isinstance(node.get("host"), str):
                raise invalid('property "nodes" validation failed: each node needs a "host" string')
            port = node.get("port", default_port)
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise invalid(f'property "nodes" validation failed: bad port {port!r}')
            if "weight" not in node:
                raise invalid('property "nodes" validation failed: property "weight" is required')
            _check_weight(node["weight"])
            result.append(Node(host=node["host"], port=port, weight=node["weight"]))
        return result
    raise invalid('property "nodes" validation failed: wrong type: expected object or array')


def _check_weight(weight: Any) -> None:
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
        raise invalid(
            f'property "nodes" validation failed: weight {weight!r} must be an integer >= 0'
        )


def check_upstream(value: dict[str, Any]) -> None:
    if "nodes" not in value:
        raise invalid('value should match only one schema, but matches none: missing "nodes"')
    scheme = value.setdefault("scheme", "http")
    if scheme not in ("http", "https"):
        raise invalid(f'property "scheme" validation failed: {scheme!r} is not http or https')
    parse_nodes(value["nodes"], scheme)
    kind = value.setdefault("type", "roundrobin")
    if kind != "roundrobin":
        raise invalid(
            f'property "type" validation failed: the stand-in balances roundrobin only, not {kind!r}'
        )
    host_mode = value.setdefault("pass_host", "pass")
    if host_mode not in ("pass", "node", "rewrite"):
        raise invalid(
            f'property "pass_host" validation failed: {host_mode!r} not in pass, node, rewrite'
        )
    if host_mode == "rewrite" and not value.get("upstream_host"):
        raise invalid('"upstream_host" is required when "pass_host" is "rewrite"')
    retries = value.get("retries")
    if retries is not None and (
        isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
    ):
        raise invalid('property "retries" validation failed: expected an integer >= 0')
    timeout = value.get("timeout")
    if timeout is not None:
        if not isinstance(timeout, dict) or not all(
            isinstance(timeout.get(k), int | float) and timeout[k] > 0
            for k in ("connect", "send", "read")
        ):
            raise invalid(
                'property "timeout" validation failed: connect, send and read must be numbers > 0'
            )
    value.setdefault("hash_on", "vars")


def check_route(value: dict[str, Any], store: AdminStore) -> None:
    if ("uri" in value) == ("uris" in value):
        raise invalid(
            'value should match only one schema: exactly one of "uri" and "uris" is required'
        )
    if "host" in value and "hosts" in value:
        raise invalid('"host" and "hosts" cannot be used together')
    for key in ("uri", "host"):
        if key in value and not isinstance(value[key], str):
            raise invalid(f'property "{key}" validation failed: wrong type: expected string')
    for key in ("uris", "hosts", "methods"):
        if key in value and (not isinstance(value[key], list) or not value[key]):
            raise invalid(f'property "{key}" validation failed: expected a non-empty array')
    upstream_id = value.get("upstream_id")
    if upstream_id is not None:
        if store.get("upstreams", str(upstream_id)) is None:
            raise AdminError(
                400,
                {
                    "error_msg": f"failed to fetch upstream info by upstream id [{upstream_id}], response code: 404"
                },
            )
    elif "upstream" in value:
        if not isinstance(value["upstream"], dict):
            raise invalid('property "upstream" validation failed: expected an object')
        check_upstream(value["upstream"])
    else:
        raise AdminError(400, {"error_msg": "missing upstream configuration in Route or Service"})
    value.setdefault("priority", 0)
    value.setdefault("status", 1)


@dataclass
class Entry:
    value: dict[str, Any]
    created_index: int
    modified_index: int


@dataclass
class AdminStore:
    """Upstreams and routes with etcd-like indexes; safe to use from several threads."""

    entries: dict[str, dict[str, Entry]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    index: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, kind: str, rid: str) -> Entry | None:
        return self.entries[kind].get(rid)

    def envelope(self, kind: str, rid: str, entry: Entry) -> dict[str, Any]:
        return {
            "key": f"/apisix/{kind}/{rid}",
            "value": copy.deepcopy(entry.value),
            "createdIndex": entry.created_index,
            "modifiedIndex": entry.modified_index,
        }

    def list(self, kind: str) -> dict[str, Any]:
        with self.lock:
            items = [self.envelope(kind, rid, e) for rid, e in sorted(self.entries[kind].items())]
        return {"total": len(items), "list": items}

    def read(self, kind: str, rid: str) -> dict[str, Any]:
        with self.lock:
            entry = self.get(kind, rid)
            if entry is None:
                raise not_found()
            return self.envelope(kind, rid, entry)

    def put(self, kind: str, rid: str, body: Any) -> tuple[int, dict[str, Any]]:
        check_id(rid)
        if not isinstance(body, dict):
            raise AdminError(400, {"error_msg": "invalid request body: expected a JSON object"})
        if "id" in body and str(body["id"]) != rid:
            raise AdminError(400, {"error_msg": f"wrong {kind[:-1]} id"})
        with self.lock:
            value = copy.deepcopy(body)
            existing = self.get(kind, rid)
            self._validate(kind, value)
            now = int(time.time())
            value["id"] = rid
            value["create_time"] = existing.value.get("create_time", now) if existing else now
            value["update_time"] = now
            self.index += 1
            if existing is None:
                entry = Entry(value, self.index, self.index)
                self.entries[kind][rid] = entry
                return 201, self.envelope(kind, rid, entry)
            existing.value = value
            existing.modified_index = self.index
            return 200, self.envelope(kind, rid, existing)

    def patch(self, kind: str, rid: str, body: Any, sub_path: str = "") -> dict[str, Any]:
        with self.lock:
            existing = self.get(kind, rid)
            if existing is None:
                raise not_found()
            value = copy.deepcopy(existing.value)
            if sub_path:
                target = value
                parts = [p for p in sub_path.split("/") if p]
                for part in parts[:-1]:
                    target = target.setdefault(part, {})
                    if not isinstance(target, dict):
                        raise invalid(f"cannot patch {sub_path}: {part} is not an object")
                target[parts[-1]] = copy.deepcopy(body)
            else:
                if not isinstance(body, dict):
                    raise AdminError(
                        400, {"error_msg": "invalid request body: expected a JSON object"}
                    )
                if "id" in body and str(body["id"]) != rid:
                    raise AdminError(400, {"error_msg": f"wrong {kind[:-1]} id"})
                merge(value, body)
            self._validate(kind, value)
            value["update_time"] = int(time.time())
            self.index += 1
            existing.value = value
            existing.modified_index = self.index
            return self.envelope(kind, rid, existing)

    def delete(self, kind: str, rid: str) -> dict[str, Any]:
        with self.lock:
            if self.get(kind, rid) is None:
                raise not_found()
            if kind == "upstreams":
                for route_id, route in self.entries["routes"].items():
                    if str(route.value.get("upstream_id")) == rid:
                        raise AdminError(
                            400,
                            {
                                "error_msg": f"can not delete this upstream, route [{route_id}] is still using it now"
                            },
                        )
            del self.entries[kind][rid]
            self.index += 1
            return {"deleted": "1", "key": f"/apisix/{kind}/{rid}"}

    def _validate(self, kind: str, value: dict[str, Any]) -> None:
        if kind == "upstreams":
            check_upstream(value)
        else:
            check_route(value, self)

    def snapshot(self) -> dict[str, dict[str, Entry]]:
        """A copy of every resource, for the proxy to read without holding the lock."""
        with self.lock:
            return {kind: dict(items) for kind, items in self.entries.items()}


def check_id(rid: str) -> None:
    if not _ID.match(rid):
        raise AdminError(
            400, {"error_msg": f"invalid configuration: id {rid!r} must match ^[a-zA-Z0-9-_.]+$"}
        )
