"""What operators need from the records store, as Protocols (easy to fake in unit tests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from operators.records.models import (
    AuditSource,
    BuildState,
    Decision,
    Detail,
    FailedCase,
    ImageRef,
    LastGreen,
    LockHolder,
    ReleaseRecord,
    ReleaseState,
    SiteImage,
    StepState,
    TaskRef,
    TestCounts,
)


class CiResultsWriter(Protocol):
    """Writes of the CI stages (build, test report, quality report), keyed by the task try."""

    def record_build(
        self,
        ref: TaskRef,
        *,
        service: str,
        commit: str,
        image: str | None,
        digest: str | None,
        state: BuildState = ...,
        commit_message: str | None = ...,
        detail: Detail = ...,
    ) -> int: ...

    def record_test_report(
        self,
        ref: TaskRef,
        *,
        service: str,
        counts: TestCounts,
        failed_cases: Sequence[FailedCase] = ...,
        commit: str | None = ...,
        digest: str | None = ...,
        coverage: float | None = ...,
        detail: Detail = ...,
    ) -> int: ...

    def record_quality_report(
        self,
        ref: TaskRef,
        *,
        service: str,
        gate_passed: bool,
        findings: Mapping[str, int],
        coverage: float | None = ...,
        commit: str | None = ...,
        digest: str | None = ...,
        tool: str | None = ...,
        detail: Detail = ...,
    ) -> int: ...


class RecordsWriter(CiResultsWriter, Protocol):
    """Writes an operator makes; every call is idempotent for the same key."""

    def start_release(
        self,
        *,
        service: str,
        image: str,
        digest: str,
        triggered_by: str,
        dag_id: str,
        run_id: str,
        source: AuditSource | None = ...,
        started_at: datetime | None = ...,
        detail: Detail = ...,
    ) -> int: ...

    def finish_release(
        self,
        release_id: int,
        *,
        state: ReleaseState,
        finished_at: datetime | None = ...,
        detail: Detail = ...,
        actor: str | None = ...,
    ) -> None: ...

    def record_release_step(
        self,
        release_id: int,
        *,
        site: str,
        step: str,
        state: StepState,
        weights: Mapping[str, int] | None = ...,
        detail: Detail = ...,
        now_running: ImageRef | None = ...,
    ) -> None: ...

    def record_approval(
        self,
        ref: TaskRef,
        *,
        decision: Decision,
        approver: str,
        release_id: int | None = ...,
        comment: str | None = ...,
        decided_at: datetime | None = ...,
        source: AuditSource = ...,
    ) -> None: ...

    def audit(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        source: AuditSource,
        run_id: str | None = ...,
        dag_id: str | None = ...,
        task_id: str | None = ...,
        detail: Detail = ...,
        occurred_at: datetime | None = ...,
        event_key: str | None = ...,
    ) -> None: ...


class ReleaseLocks(Protocol):
    """One release per service at a time, with a lease a dead run cannot hold forever."""

    def acquire_lock(self, service: str, owner_run_id: str, ttl: timedelta | float) -> bool: ...

    def release_lock(self, service: str, owner_run_id: str) -> bool: ...

    def lock_holder(self, service: str) -> LockHolder | None: ...


class RecordsReader(Protocol):
    """Questions the release gate and people ask."""

    def last_green(self, digest: str) -> LastGreen: ...

    def current_images(self, service: str | None = ...) -> list[SiteImage]: ...

    def release_history(self, service: str, limit: int = ...) -> list[ReleaseRecord]: ...


class Records(RecordsWriter, ReleaseLocks, RecordsReader, Protocol):
    """The whole surface operators use; :class:`~operators.records.RecordsStore` provides it."""
