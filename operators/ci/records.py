"""What the CI operators write to the platform records, as a small interface.

:class:`CiRecorder` is the part of :class:`operators.records.RecordsStore` (connection
``sre_records``) that builds, test runs and quality scans use; a unit test passes a fake through
the operators' ``recorder_factory`` argument. Records are keyed by the task try, so a retried
task updates its own record instead of adding one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol


class CiRecorder(Protocol):
    """Writes of the CI stages (see ``operators.records`` for the meaning of each field)."""

    def record_build(
        self,
        ref: Any,
        *,
        service: str,
        commit: str,
        image: str | None,
        digest: str | None,
        state: Any = ...,
        commit_message: str | None = ...,
        detail: Any = ...,
    ) -> int: ...

    def record_test_report(
        self,
        ref: Any,
        *,
        service: str,
        counts: Any,
        failed_cases: Sequence[Any] = ...,
        commit: str | None = ...,
        digest: str | None = ...,
        coverage: float | None = ...,
        detail: Any = ...,
    ) -> int: ...

    def record_quality_report(
        self,
        ref: Any,
        *,
        service: str,
        gate_passed: bool,
        findings: Mapping[str, int],
        coverage: float | None = ...,
        commit: str | None = ...,
        digest: str | None = ...,
        tool: str | None = ...,
        detail: Any = ...,
    ) -> int: ...


RecorderFactory = Callable[[], AbstractContextManager[CiRecorder]]


@contextmanager
def platform_records() -> Any:
    """The platform records store named by the ``sre_records`` connection."""
    from operators.records import RecordsStore

    with RecordsStore.from_conn_id() as store:
        yield store


def task_ref(context: Mapping[str, Any]) -> Any:
    """The records key of the running task try."""
    from operators.records import TaskRef

    return TaskRef.from_context(context)
