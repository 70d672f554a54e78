"""In-process Elasticsearch stand-in for tests: ``with run_es() as es: ...``.

The node runs on a thread of the test process, so a test can steer faults and look at what was
stored directly, while the code under test talks to ``es.url`` over real HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sandbox.es.server import DEFAULT_VERSION, EsStandIn, Fault
from sandbox.es.store import values_at


@dataclass
class RunningEs:
    """A started stand-in node and the handles tests use to steer and inspect it."""

    node: EsStandIn

    @property
    def url(self) -> str:
        return self.node.url

    def set_fault(
        self,
        mode: str,
        *,
        status: int = 503,
        delay: float = 0.0,
        path: str | None = None,
        method: str | None = None,
        body: str | None = None,
        min_bytes: int | None = None,
        times: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Inject a fault: ``down``, ``slow`` (``delay`` seconds) or ``status`` (e.g. 429); see :class:`Fault`."""
        self.node.faults.add(
            Fault.from_json(
                {
                    "mode": mode,
                    "status": status,
                    "delay": delay,
                    "path": path,
                    "method": method,
                    "body": body,
                    "min_bytes": min_bytes,
                    "times": times,
                    "retry_after": retry_after,
                }
            )
        )

    def limit_body(self, max_bytes: int | None) -> None:
        """Answer 413 to request bodies larger than ``max_bytes`` (None lifts the limit)."""
        self.node.faults.max_body_bytes = max_bytes

    def clear_faults(self) -> None:
        self.node.faults.clear()

    def reset(self) -> None:
        """Forget every index, template, fault and logged request."""
        self.node.store.reset()
        self.node.faults.clear()
        self.node.requests.clear()

    def requests(
        self, path_contains: str | None = None, body_contains: str | None = None
    ) -> list[dict[str, Any]]:
        """Requests the node received, oldest first.

        ``path_contains`` keeps those whose path contains a string; ``body_contains`` those whose
        body starts (first 2 KiB) with text containing a string, e.g. one task's log_id.
        """
        logged = list(self.node.requests)
        if path_contains is not None:
            logged = [r for r in logged if path_contains in r["path"]]
        if body_contains is not None:
            logged = [r for r in logged if body_contains in r.get("body_head", "")]
        return logged

    def documents(self, index: str = "*", **equals: Any) -> list[dict[str, Any]]:
        """Stored sources in write order, optionally only those whose fields equal the given values."""
        found = []
        for _, doc in self.node.store.all_documents(index):
            if all(
                equals_value in values_at(doc.source, name) for name, equals_value in equals.items()
            ):
                found.append(doc.source)
        return found

    def index_names(self) -> list[str]:
        with self.node.store.lock:
            return sorted(self.node.store.indices)

    def mappings(self, index: str) -> dict[str, Any]:
        with self.node.store.lock:
            return dict(self.node.store.indices[index].mappings)

    def client(self, **kwargs: Any) -> Any:
        """An ``elasticsearch.Elasticsearch`` client for this node."""
        from elasticsearch import Elasticsearch

        return Elasticsearch(self.url, **kwargs)


@contextmanager
def run_es(
    *, version: str = DEFAULT_VERSION, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningEs]:
    """Start a stand-in node for the ``with`` block; it is stopped (connections closed) after it."""
    node = EsStandIn(host, port, version)
    node.start()
    try:
        yield RunningEs(node)
    finally:
        node.stop()
