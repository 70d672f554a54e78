"""One audit record per webhook call, accepted or refused (records store, source ``webhook``).

The webhook depends only on :class:`AuditWriter`, the ``audit`` call of
:class:`operators.records.RecordsStore`. :class:`RecordsAuditWriter` opens the store of the
records connection (``sre_records``) on first use and keeps it. A failure to write a record is
logged with every field of the record and does not change the answer to the caller: the DAG run,
if any, has already been created by then.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Literal, Protocol

log = logging.getLogger(__name__)


class AuditWriter(Protocol):
    """The part of the records store the webhook writes to."""

    def audit(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        source: Literal["webhook"],
        run_id: str | None = ...,
        dag_id: str | None = ...,
        detail: Mapping[str, Any] | None = ...,
    ) -> None: ...


class RecordsAuditWriter:
    """Writes audit events to the records store of ``conn_id`` (default: the records connection).

    :param conn_id: Airflow connection id of the records store; None for the default.
    """

    def __init__(self, conn_id: str | None = None) -> None:
        self.conn_id = conn_id
        self._store: AuditWriter | None = None
        self._lock = threading.Lock()

    def _open(self) -> AuditWriter:
        with self._lock:
            if self._store is None:
                from operators.records.store import RecordsStore

                self._store = RecordsStore.from_conn_id(self.conn_id)
            return self._store

    def audit(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        source: Literal["webhook"],
        run_id: str | None = None,
        dag_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        self._open().audit(
            actor=actor,
            action=action,
            target=target,
            source=source,
            run_id=run_id,
            dag_id=dag_id,
            detail=detail,
        )


def write_audit(
    writer: AuditWriter,
    *,
    actor: str,
    action: str,
    target: str,
    run_id: str | None = None,
    dag_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> bool:
    """Write one webhook audit record; log it instead when the store fails. True if written."""
    try:
        writer.audit(
            actor=actor,
            action=action,
            target=target,
            source="webhook",
            run_id=run_id,
            dag_id=dag_id,
            detail=detail,
        )
    except Exception:
        log.exception(
            "webhook audit record not written actor=%s action=%s target=%s dag_id=%s run_id=%s detail=%s",
            actor,
            action,
            target,
            dag_id,
            run_id,
            dict(detail or {}),
        )
        return False
    return True
