"""Fakes for unit tests of the CI operators: a records recorder and a minimal task context."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any


@dataclass
class FakeRecorder:
    """Keeps every write as (method, kwargs)."""

    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def record_build(self, ref: Any, **kwargs: Any) -> int:
        self.writes.append(("build", {"ref": ref, **kwargs}))
        return len(self.writes)

    def record_test_report(self, ref: Any, **kwargs: Any) -> int:
        self.writes.append(("test", {"ref": ref, **kwargs}))
        return len(self.writes)

    def record_quality_report(self, ref: Any, **kwargs: Any) -> int:
        self.writes.append(("quality", {"ref": ref, **kwargs}))
        return len(self.writes)

    def factory(self) -> Any:
        @contextmanager
        def open_recorder():
            yield self

        return open_recorder


class FakeTaskInstance:
    """What the CI operators use of a task instance: identity and XCom."""

    def __init__(
        self, task_id: str, xcom: dict[tuple[str, str], Any] | None = None, try_number: int = 1
    ):
        self.dag_id = "ci_unit"
        self.task_id = task_id
        self.run_id = "manual__2026-12-04T10:00:00+00:00"
        self.map_index = -1
        self.try_number = try_number
        self.xcom = dict(xcom or {})
        self.pushed: dict[str, Any] = {}

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.xcom.get((task_ids, key))

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def context_for(ti: FakeTaskInstance) -> dict[str, Any]:
    return {"ti": ti, "run_id": ti.run_id, "dag": SimpleNamespace(dag_id=ti.dag_id)}
