"""Delete platform records older than a retention, through the records store's transactions.

The records store has no purge call of its own, so the statements live here, limited to the
records tables and written once with ``%s`` placeholders for both dialects. What goes:

- CI evidence (``builds``, ``test_reports``, ``quality_reports``) created before the cutoff,
  except rows about an image digest a site still runs (``site_images``): the release gate and
  rollbacks may still ask about those;
- ``pipeline_runs`` not updated since the cutoff;
- finished ``releases`` that ended before the cutoff, with their ``release_steps`` and
  ``approvals``, except a release a site's current image points to;
- ``approvals`` without a release, decided before the cutoff;
- ``audit_events`` that occurred before the (longer) audit cutoff.

``release_locks`` and ``site_images`` are never touched. Rows go in batches of ``batch_size``,
each batch its own transaction, so a long purge never holds locks for long and an interrupted
one simply continues where it stopped when run again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from operators.records.store import Transaction

T = TypeVar("T")

DEFAULT_BATCH_SIZE = 1000
_KEPT_DIGESTS = "SELECT digest FROM site_images"
_KEPT_RELEASES = "SELECT release_id FROM site_images WHERE release_id IS NOT NULL"


class TransactionRunner(Protocol):
    """The records store's unit-of-work call."""

    def transaction(
        self, what: str, work: Callable[[Transaction], T], *, write: bool = ...
    ) -> T: ...


@dataclass(frozen=True)
class _Rule:
    """Rows of ``table`` selected by ``where`` (one ``%s`` for the cutoff); children go first."""

    table: str
    where: str
    audit: bool = False
    children: tuple[tuple[str, str], ...] = ()


RULES: tuple[_Rule, ...] = (
    *(
        _Rule(table, f"created_at < %s AND (digest IS NULL OR digest NOT IN ({_KEPT_DIGESTS}))")
        for table in ("builds", "test_reports", "quality_reports")
    ),
    _Rule("pipeline_runs", "updated_at < %s"),
    _Rule(
        "releases",
        f"finished_at IS NOT NULL AND finished_at < %s AND id NOT IN ({_KEPT_RELEASES})",
        children=(("release_steps", "release_id"), ("approvals", "release_id")),
    ),
    _Rule("approvals", "release_id IS NULL AND decided_at < %s"),
    _Rule("audit_events", "occurred_at < %s", audit=True),
)


def purge_records(
    store: TransactionRunner,
    *,
    retention: timedelta,
    audit_retention: timedelta,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, int]:
    """Delete records older than the retentions; return the rows deleted per table.

    :param store: the records store.
    :param retention: age past which CI evidence, pipeline runs and releases go.
    :param audit_retention: age past which audit events go.
    :param batch_size: rows per transaction.
    """
    now = store.transaction("purge clock", lambda tx: tx.db_now(), write=False)
    deleted: dict[str, int] = {}
    for rule in RULES:
        cutoff = now - (audit_retention if rule.audit else retention)
        for table, count in _purge(store, rule, cutoff, batch_size).items():
            deleted[table] = deleted.get(table, 0) + count
    return deleted


def _purge(
    store: TransactionRunner, rule: _Rule, cutoff: datetime, batch_size: int
) -> dict[str, int]:
    counts = {rule.table: 0, **{child: 0 for child, _ in rule.children}}

    def batch(tx: Transaction) -> dict[str, int]:
        select = f"SELECT id FROM {rule.table} WHERE {rule.where} ORDER BY id LIMIT %s"  # noqa: S608
        ids = [row[0] for row in tx.all(select, (tx.dialect.to_db(cutoff), batch_size))]
        done: dict[str, int] = {}
        if not ids:
            return done
        marks = ", ".join(["%s"] * len(ids))
        for child, column in rule.children:
            done[child] = tx.execute(f"DELETE FROM {child} WHERE {column} IN ({marks})", ids)  # noqa: S608
        done[rule.table] = tx.execute(f"DELETE FROM {rule.table} WHERE id IN ({marks})", ids)  # noqa: S608
        return done

    while True:
        done = store.transaction(f"purge {rule.table}", batch)
        for table, count in done.items():
            counts[table] += count
        if done.get(rule.table, 0) < batch_size:
            return counts


class RecordsPurgeOperator(BaseOperator):
    """Delete platform records older than the retentions and audit the purge.

    :param retention_days: age in days past which CI evidence, pipeline runs and finished
        releases go; at least 7. (templated)
    :param audit_retention_days: age in days past which audit events go; at least 30.
        (templated)
    :param conn_id: the records connection; None for the default (``sre_records``).
    :param batch_size: rows deleted per transaction.
    """

    template_fields: Sequence[str] = ("retention_days", "audit_retention_days")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        retention_days: int | str,
        audit_retention_days: int | str,
        conn_id: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.retention_days = retention_days
        self.audit_retention_days = audit_retention_days
        self.conn_id = conn_id
        self.batch_size = batch_size

    def execute(self, context: Context) -> dict[str, int]:
        from operators.records.store import RecordsStore

        retention = timedelta(days=int(self.retention_days))
        audit_retention = timedelta(days=int(self.audit_retention_days))
        if retention < timedelta(days=7) or audit_retention < timedelta(days=30):
            raise ValueError(
                f"retention_days={self.retention_days} (minimum 7) or "
                f"audit_retention_days={self.audit_retention_days} (minimum 30) is too short"
            )
        with RecordsStore.from_conn_id(self.conn_id) as store:
            deleted = purge_records(
                store,
                retention=retention,
                audit_retention=audit_retention,
                batch_size=self.batch_size,
            )
            store.audit(
                actor="cleanup",
                action="records.purged",
                target="records",
                source="schedule",
                dag_id=self.dag_id,
                run_id=context["run_id"],
                task_id=self.task_id,
                detail={
                    "deleted": deleted,
                    "retention_days": retention.days,
                    "audit_retention_days": audit_retention.days,
                },
            )
        self.log.info(
            "records purge done retention_days=%s audit_retention_days=%s deleted=%s",
            retention.days,
            audit_retention.days,
            deleted,
        )
        return deleted
