"""What the release needs from the platform records.

The release depends on the records package's :class:`~operators.records.protocol.Records`
interface, which :class:`operators.records.store.RecordsStore` (connection ``sre_records``)
provides; unit tests pass a fake. The release writes one release row per run, one step row per
(site, step) with state, weights and details (the store stamps the created and updated times),
approvals and audit events, and holds a per-service release lock with an expiry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from operators.records.protocol import Records as ReleaseRecords


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
