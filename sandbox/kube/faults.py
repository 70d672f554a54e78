"""API-level fault injection: errors, slow answers and dropped streams, driven by data.

Rules are posted to ``POST /sandbox/faults`` as JSON (one rule or a list)::

    {"status": 429, "count": 3, "method": "GET", "path": "/pods", "retry_after": 1}
    {"status": 503, "count": 1}
    {"delay_ms": 800, "count": 5, "path": "/deployments"}
    {"drop_streams": true, "path": "watch=", "count": 2}

``count`` (default 1) is how many matching requests the rule acts on; ``path`` is a regular
expression searched in the request's path with its query string; ``method`` matches exactly.
``drop_streams`` closes the open watch and log streams that match at once, and ``count`` more
streams that open later, right after their first bytes. ``DELETE /sandbox/faults`` clears all.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from sandbox.kube.meta import ApiError

_ids = itertools.count(1)


@dataclass
class FaultRule:
    """One posted rule and how many more requests it applies to."""

    status: int | None = None
    delay_ms: float = 0.0
    drop_streams: bool = False
    count: int = 1
    method: str | None = None
    path: str | None = None
    retry_after: int = 1
    message: str | None = None
    id: int = field(default_factory=lambda: next(_ids))

    def matches(self, method: str, path_qs: str) -> bool:
        if self.count <= 0:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return not (self.path and not re.search(self.path, path_qs))

    def describe(self) -> dict[str, Any]:
        return {
            k: v for k, v in self.__dict__.items() if v not in (None, False, 0.0) or k == "count"
        }


def parse_rule(data: Any) -> FaultRule:
    if not isinstance(data, dict):
        raise ApiError(400, "BadRequest", "a fault rule must be a JSON object")
    status = data.get("status")
    if status is not None and int(status) not in (429, 500, 502, 503, 504):
        raise ApiError(400, "BadRequest", "status must be one of 429, 500, 502, 503, 504")
    rule = FaultRule(
        status=int(status) if status is not None else None,
        delay_ms=float(data.get("delay_ms", 0)),
        drop_streams=bool(data.get("drop_streams", False)),
        count=int(data.get("count", 1)),
        method=data.get("method"),
        path=data.get("path"),
        retry_after=int(data.get("retry_after", 1)),
        message=data.get("message"),
    )
    if rule.path:
        try:
            re.compile(rule.path)
        except re.error as exc:
            raise ApiError(400, "BadRequest", f"path is not a regular expression: {exc}") from exc
    if rule.status is None and not rule.delay_ms and not rule.drop_streams:
        raise ApiError(400, "BadRequest", "a fault rule needs status, delay_ms or drop_streams")
    return rule


def fault_error(rule: FaultRule) -> ApiError:
    """The Status a real server sends for this kind of failure."""
    if rule.status == 429:
        return ApiError(
            429,
            "TooManyRequests",
            rule.message or "Too many requests, please try again later.",
            {"retryAfterSeconds": rule.retry_after},
            {"Retry-After": str(rule.retry_after)},
        )
    if rule.status == 500:
        message = rule.message or "injected fault"
        return ApiError(
            500,
            "InternalError",
            f"Internal error occurred: {message}",
            {"causes": [{"message": message}]},
        )
    if rule.status == 504:
        return ApiError(
            504,
            "Timeout",
            rule.message or "Timeout: request did not complete within the allotted timeout",
            {},
        )
    return ApiError(
        int(rule.status or 503),
        "ServiceUnavailable",
        rule.message or "the server is currently unable to handle the request",
    )


class Stream:
    """An open watch or log stream that a fault can cut."""

    def __init__(self, path_qs: str, transport: Any) -> None:
        self.path_qs = path_qs
        self.transport = transport
        self.dropped = asyncio.Event()

    def drop(self) -> None:
        self.dropped.set()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


class Faults:
    """The active rules and open streams of a site."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.streams: set[Stream] = set()
        self.pending_drops: list[FaultRule] = []

    def add(self, data: Any) -> list[dict[str, Any]]:
        items = data if isinstance(data, list) else [data]
        added = []
        for item in items:
            rule = parse_rule(item)
            if rule.drop_streams:
                for stream in list(self.streams):
                    if not rule.path or re.search(rule.path, stream.path_qs):
                        stream.drop()
                if rule.count > 0 and "count" in item:
                    self.pending_drops.append(rule)
            else:
                self.rules.append(rule)
            added.append(rule.describe())
        return added

    def clear(self) -> None:
        self.rules.clear()
        self.pending_drops.clear()

    def describe(self) -> list[dict[str, Any]]:
        return [r.describe() for r in self.rules + self.pending_drops if r.count > 0]

    async def apply(self, method: str, path_qs: str) -> None:
        """Delay or fail a request as the first matching rules say."""
        for rule in list(self.rules):
            if not rule.matches(method, path_qs):
                continue
            rule.count -= 1
            if rule.count <= 0:
                self.rules.remove(rule)
            if rule.delay_ms:
                await asyncio.sleep(rule.delay_ms / 1000)
            if rule.status is not None:
                raise fault_error(rule)

    def open_stream(self, path_qs: str, transport: Any) -> Stream:
        stream = Stream(path_qs, transport)
        self.streams.add(stream)
        return stream

    def close_stream(self, stream: Stream) -> None:
        self.streams.discard(stream)

    def should_drop_new(self, stream: Stream) -> bool:
        for rule in list(self.pending_drops):
            if rule.count > 0 and (not rule.path or re.search(rule.path, stream.path_qs)):
                rule.count -= 1
                if rule.count <= 0:
                    self.pending_drops.remove(rule)
                return True
        return False

    async def drop_all(self) -> None:
        for stream in list(self.streams):
            stream.drop()
