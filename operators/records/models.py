"""Value types of the platform records: what callers pass in and what queries return."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

AuditSource = Literal["ui", "api", "webhook", "schedule", "cli", "dag", "system"]
"""Where an action came from: the web UI, the REST API, the Git webhook, a schedule (timetable,
asset or backfill), the Airflow CLI or ``dag.test()``, another DAG, or the platform itself."""

AUDIT_SOURCES: frozenset[str] = frozenset(get_args(AuditSource))

BuildState = Literal["success", "failed"]
TestState = Literal["passed", "failed"]
ReleaseState = Literal["running", "succeeded", "failed", "rolled_back", "cancelled"]
StepState = Literal["pending", "running", "success", "failed", "skipped", "rolled_back"]
Decision = Literal["approved", "rejected"]

RELEASE_STATES: frozenset[str] = frozenset(get_args(ReleaseState))
STEP_STATES: frozenset[str] = frozenset(get_args(StepState))
DECISIONS: frozenset[str] = frozenset(get_args(Decision))

Detail = Mapping[str, Any] | str | None
"""Free-form detail stored as JSON text; read back as the decoded JSON value."""


class RecordsError(Exception):
    """A records operation failed; the message says what and why."""


class RecordsConfigError(RecordsError):
    """The records connection is missing or of a type the store does not support."""


class RecordsUnavailableError(RecordsError):
    """The records database could not be reached, or the connection kept dropping."""


class MigrationError(RecordsError):
    """The records schema cannot be brought up to date."""


@dataclass(frozen=True)
class TaskRef:
    """Identity of one task try: records written by a task are keyed by it.

    A task retried after it already wrote (same run, task, map index and try) updates its
    record instead of adding one; a new try writes its own record.
    """

    dag_id: str
    run_id: str
    task_id: str
    try_number: int = 1
    map_index: int = -1

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> TaskRef:
        """Build the reference from an Airflow task context (``execute(context)``)."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return cls(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            try_number=int(ti.try_number),
            map_index=-1 if map_index is None else int(map_index),
        )


@dataclass(frozen=True)
class ImageRef:
    """An image reference and its content digest (``sha256:<64 hex>``)."""

    image: str
    digest: str


@dataclass(frozen=True)
class TestCounts:
    """Test counts of one report; ``total`` includes failed, errored and skipped cases."""

    __test__ = False  # not a pytest test class despite the name

    total: int
    failed: int = 0
    errors: int = 0
    skipped: int = 0

    @property
    def green(self) -> bool:
        return self.failed == 0 and self.errors == 0


@dataclass(frozen=True)
class FailedCase:
    """One failed or errored test case."""

    name: str
    classname: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class BuildRecord:
    id: int
    service: str
    commit: str
    commit_message: str | None
    image: str | None
    digest: str | None
    state: str
    ref: TaskRef
    created_at: datetime


@dataclass(frozen=True)
class TestReportRecord:
    __test__ = False

    id: int
    service: str
    commit: str | None
    digest: str | None
    state: str
    counts: TestCounts
    failed_cases: tuple[FailedCase, ...]
    coverage: float | None
    ref: TaskRef
    created_at: datetime


@dataclass(frozen=True)
class QualityReportRecord:
    id: int
    service: str
    commit: str | None
    digest: str | None
    gate_passed: bool
    findings: Mapping[str, int]
    coverage: float | None
    tool: str | None
    ref: TaskRef
    created_at: datetime


@dataclass(frozen=True)
class LastGreen:
    """The newest passing build, test report and quality report of one digest."""

    digest: str
    build: BuildRecord | None
    test: TestReportRecord | None
    scan: QualityReportRecord | None

    @property
    def releasable(self) -> bool:
        """True when the digest has a green build, a green test report and a passed gate."""
        return self.build is not None and self.test is not None and self.scan is not None


@dataclass(frozen=True)
class ReleaseStepRecord:
    site: str
    step: str
    state: str
    weights: Mapping[str, int] | None
    detail: Any
    updated_at: datetime


@dataclass(frozen=True)
class ReleaseRecord:
    id: int
    service: str
    image: str
    digest: str
    state: str
    triggered_by: str
    source: str | None
    dag_id: str
    run_id: str
    started_at: datetime
    finished_at: datetime | None
    detail: Any
    steps: tuple[ReleaseStepRecord, ...] = ()


@dataclass(frozen=True)
class SiteImage:
    """What one site runs for one service, as the last release step recorded it."""

    service: str
    site: str
    image: str
    digest: str
    release_id: int | None
    updated_at: datetime


@dataclass(frozen=True)
class PipelineRunRecord:
    dag_id: str
    run_id: str
    state: str
    service: str | None
    commit: str | None
    run_type: str | None
    source: str | None
    triggered_by: str | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class AuditEvent:
    id: int
    occurred_at: datetime
    actor: str
    action: str
    target: str
    source: str
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    detail: Any


@dataclass(frozen=True)
class LockHolder:
    service: str
    owner_run_id: str
    acquired_at: datetime
    expires_at: datetime
