"""What the release needs from the platform records, as a small interface.

The platform's :class:`operators.records.store.RecordsStore` (connection ``sre_records``) fits it
as it is; unit tests pass a fake. The release writes one release row per run, one step row per
(site, step) with state, weights and details (the store stamps the created and updated times),
approvals and audit events, and holds a per-service release lock with an expiry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol


class GreenRecords(Protocol):
    """The newest passing build, test report and quality gate of a digest (None where missing)."""

    @property
    def build(self) -> Any: ...

    @property
    def test(self) -> Any: ...

    @property
    def scan(self) -> Any: ...


class LockOwner(Protocol):
    """Who holds a release lock, and until when."""

    @property
    def owner_run_id(self) -> str: ...

    @property
    def expires_at(self) -> datetime: ...


class ReleaseRecords(Protocol):
    """The records operations a release depends on."""

    def last_green(self, digest: str) -> GreenRecords: ...

    def acquire_lock(self, service: str, owner_run_id: str, ttl: timedelta | float) -> bool: ...

    def lock_holder(self, service: str) -> LockOwner | None: ...

    def release_lock(self, service: str, owner_run_id: str) -> bool: ...

    def start_release(
        self,
        *,
        service: str,
        image: str,
        digest: str,
        triggered_by: str,
        dag_id: str,
        run_id: str,
        source: Any = None,
        detail: Any = None,
    ) -> int: ...

    def record_release_step(
        self,
        release_id: int,
        *,
        site: str,
        step: str,
        state: Any,
        weights: Mapping[str, int] | None = None,
        detail: Any = None,
        now_running: Any = None,
    ) -> None: ...

    def record_approval(
        self,
        ref: Any,
        *,
        decision: Any,
        approver: str,
        release_id: int | None = None,
        comment: str | None = None,
    ) -> None: ...

    def finish_release(self, release_id: int, *, state: Any, detail: Any = None) -> None: ...

    def audit(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        source: Any,
        run_id: str | None = None,
        dag_id: str | None = None,
        task_id: str | None = None,
        detail: Any = None,
    ) -> None: ...


def release_records() -> ReleaseRecords:
    """The platform's records store (connection ``SRE_RECORDS_CONN_ID`` or ``sre_records``)."""
    from operators.records.store import RecordsStore

    return RecordsStore.from_conn_id()


def digest_of(image: str) -> str:
    """``repo@sha256:abc`` -> ``sha256:abc``."""
    _, _, digest = image.partition("@")
    return digest


def image_ref(image: str) -> Any:
    """The records' ImageRef of an image reference (what a site now runs)."""
    from operators.records.models import ImageRef

    return ImageRef(image=image, digest=digest_of(image))
