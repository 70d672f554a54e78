"""The records store: idempotent writes, release locks and queries over one connection id."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from operators.records.dialect import Dialect, open_hook, records_conn_id
from operators.records.models import (
    AUDIT_SOURCES,
    DECISIONS,
    RELEASE_STATES,
    STEP_STATES,
    AuditEvent,
    AuditSource,
    BuildRecord,
    BuildState,
    Decision,
    Detail,
    FailedCase,
    ImageRef,
    LastGreen,
    LockHolder,
    PipelineRunRecord,
    QualityReportRecord,
    RecordsError,
    RecordsUnavailableError,
    ReleaseRecord,
    ReleaseState,
    ReleaseStepRecord,
    SiteImage,
    StepState,
    TaskRef,
    TestCounts,
    TestReportRecord,
)

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_DETAIL_CHARS = 1_000_000
MAX_FAILED_CASES = 200
MAX_CASE_MESSAGE_CHARS = 2_000

_TASK_KEY = ("dag_id", "run_id", "task_id", "map_index", "try_number")


def _cols(*parts: str | tuple[str, ...]) -> tuple[str, ...]:
    """Column names from space-separated strings and tuples, in order."""
    names: list[str] = []
    for part in parts:
        names.extend(part.split() if isinstance(part, str) else part)
    return tuple(names)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a unit of work is run again after the connection dropped.

    :param attempts: runs in total, at least 1.
    :param first_delay: seconds before the second run; doubled for every further run.
    :param max_delay: upper bound of one delay in seconds.
    """

    attempts: int = 4
    first_delay: float = 0.2
    max_delay: float = 2.0

    def delays(self) -> Iterator[float]:
        delay = self.first_delay
        for _ in range(max(self.attempts, 1) - 1):
            yield min(delay, self.max_delay)
            delay *= 2


class Transaction:
    """Statements of one unit of work, run on one connection inside one transaction."""

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cursor = cursor
        self.dialect = dialect

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the driver's row count."""
        self._cursor.execute(self.dialect.sql(statement), tuple(params))
        return int(self._cursor.rowcount or 0)

    def execute_raw(self, statement: str) -> None:
        """Run one statement without parameters, exactly as written (DDL)."""
        self._cursor.execute(statement)

    def one(
        self, statement: str, params: Sequence[Any] = (), *, for_update: bool = False
    ) -> tuple[Any, ...] | None:
        """First row of a query; ``for_update`` locks it until the transaction ends."""
        if for_update:
            statement += self.dialect.for_update
        self._cursor.execute(self.dialect.sql(statement), tuple(params))
        row = self._cursor.fetchone()
        self._cursor.fetchall()
        return None if row is None else tuple(row)

    def all(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(self.dialect.sql(statement), tuple(params))
        return [tuple(row) for row in self._cursor.fetchall()]

    def db_now(self) -> datetime:
        """The database server's current time (UTC)."""
        row = self.one(self.dialect.now_sql)
        now = self.dialect.from_db(row[0] if row else None)
        if now is None:
            raise RecordsError("the records database returned no current time")
        return now

    @property
    def cursor(self) -> Any:
        return self._cursor


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _dump(detail: Any) -> str | None:
    if detail is None:
        return None
    text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > MAX_DETAIL_CHARS:
        text = json.dumps(
            {"truncated": True, "preview": text[: MAX_DETAIL_CHARS // 2]}, ensure_ascii=False
        )
    return text


def _load(text: Any) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _bounded(field: str, value: str, limit: int) -> str:
    if not value:
        raise ValueError(f"{field} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{field} is longer than {limit} characters: {value[:40]!r}...")
    return value


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _ref_params(ref: TaskRef) -> tuple[Any, ...]:
    return (ref.dag_id, ref.run_id, ref.task_id, ref.map_index, ref.try_number)


def _ref_of(row: Sequence[Any]) -> TaskRef:
    dag_id, run_id, task_id, map_index, try_number = row
    return TaskRef(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        try_number=int(try_number),
        map_index=int(map_index),
    )


class RecordsStore:
    """Platform records in MySQL or SQLite, chosen by one Airflow connection.

    Every public method is one transaction: it commits whole or not at all. A connection that
    drops mid-way (server restarted, connection killed, deadlock) makes the whole unit run again
    on a new connection, up to ``retry.attempts`` times; then :class:`RecordsUnavailableError`
    says what failed and why. Writes are keyed (task try, release step, event key), so running a
    unit again never adds a second row.

    A store may be shared between threads: each thread gets its own database connection.

    :param hook: a ``MySqlHook`` or ``SqliteHook`` for the records connection.
    :param dialect: the matching :class:`~operators.records.dialect.Dialect`.
    :param retry: how often a unit of work is run again after the connection dropped.
    :param conn_id: the connection id, used in messages.
    """

    def __init__(
        self,
        hook: DbApiHook,
        dialect: Dialect,
        *,
        retry: RetryPolicy | None = None,
        conn_id: str = "",
    ) -> None:
        self.hook = hook
        self.dialect = dialect
        self.retry = retry or RetryPolicy()
        self.conn_id = conn_id
        self._local = threading.local()
        self._connections: list[Any] = []
        self._connections_lock = threading.Lock()

    @classmethod
    def from_conn_id(
        cls, conn_id: str | None = None, *, retry: RetryPolicy | None = None
    ) -> RecordsStore:
        """Open the store of ``conn_id`` (default: ``SRE_RECORDS_CONN_ID`` or ``sre_records``).

        :raises RecordsConfigError: the connection is not defined or of an unsupported type.
        """
        conn_id = conn_id or records_conn_id()
        hook, dialect = open_hook(conn_id)
        return cls(hook, dialect, retry=retry, conn_id=conn_id)

    def __enter__(self) -> RecordsStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection the store opened."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            _close_quietly(conn)
        self._local = threading.local()

    # -- units of work -------------------------------------------------------------------

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.hook.get_conn()
            try:
                self.dialect.prepare_connection(conn)
            except Exception:
                _close_quietly(conn)
                raise
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _discard_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._connections_lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            _close_quietly(conn)

    def transaction(
        self,
        what: str,
        work: Callable[[Transaction], T],
        *,
        write: bool = True,
        retry: RetryPolicy | None = None,
    ) -> T:
        """Run ``work`` in one transaction, again from the start if the connection drops.

        :param what: short description used in log lines and errors.
        :param work: the statements; must be safe to run again (keyed writes).
        :param write: take the write lock up front (SQLite); reads pass False.
        :param retry: overrides the store's policy for this unit.
        """
        policy = retry or self.retry
        delays = policy.delays()
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._run_once(work, write=write)
            except RecordsError:
                raise
            except Exception as exc:
                if self.dialect.is_missing_table(exc):
                    raise RecordsError(
                        f"{what} failed: the records schema is missing or out of date "
                        f"(conn_id={self.conn_id}); run `python -m operators.records migrate`: {exc}"
                    ) from exc
                if not self.dialect.is_retryable(exc):
                    raise RecordsError(f"{what} failed (conn_id={self.conn_id}): {exc}") from exc
                delay = next(delays, None)
                if delay is None:
                    elapsed = time.monotonic() - started
                    raise RecordsUnavailableError(
                        f"{what} failed after {attempt} attempt(s) in {elapsed:.1f}s: the records "
                        f"database is unreachable or keeps dropping the connection "
                        f"(conn_id={self.conn_id}); no partial write was kept and calling again "
                        f"is safe; last error: {exc}"
                    ) from exc
                log.warning(
                    "records unit interrupted, running it again what=%s attempt=%s delay=%.2fs "
                    "error=%s",
                    what,
                    attempt,
                    delay,
                    exc,
                )
                time.sleep(delay)

    def _run_once(self, work: Callable[[Transaction], T], *, write: bool) -> T:
        conn = self._connection()
        cursor = None
        try:
            self.dialect.begin(conn, write=write)
            cursor = conn.cursor()
            result = work(Transaction(cursor, self.dialect))
            cursor.close()
            cursor = None
            conn.commit()
            return result
        except BaseException as exc:
            if cursor is not None:
                _close_quietly(cursor)
            if isinstance(exc, Exception) and self.dialect.is_disconnect(exc):
                self._discard_connection()
            else:
                try:
                    conn.rollback()
                except Exception:
                    self._discard_connection()
            raise

    # -- writes --------------------------------------------------------------------------

    def record_pipeline_run(
        self,
        *,
        dag_id: str,
        run_id: str,
        state: str,
        service: str | None = None,
        commit: str | None = None,
        run_type: str | None = None,
        source: AuditSource | None = None,
        triggered_by: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        detail: Detail = None,
    ) -> None:
        """Insert or update the record of one DAG run (key: dag id, run id).

        Values given as None keep what an earlier call stored.

        :param dag_id: the DAG.
        :param run_id: the DAG run.
        :param state: ``queued``, ``running``, ``success`` or ``failed``.
        :param service: the service the run works on, if any.
        :param commit: the commit the run works on, if any.
        :param run_type: Airflow's run type (``manual``, ``scheduled``...).
        :param source: where the run was triggered from.
        :param triggered_by: the user who triggered it, or the system.
        :param started_at: when the run started.
        :param finished_at: when it ended.
        :param detail: JSON-serialisable extra facts.
        """
        if source is not None and source not in AUDIT_SOURCES:
            raise ValueError(f"source must be one of {sorted(AUDIT_SOURCES)}, not {source!r}")
        d = self.dialect
        now = _utcnow()
        columns = _cols(
            "dag_id run_id service commit_id run_type source triggered_by state started_at "
            "finished_at detail created_at updated_at"
        )
        values = (
            dag_id,
            run_id,
            service,
            commit,
            run_type,
            source,
            triggered_by,
            _bounded("state", state, 16),
            d.to_db(started_at),
            d.to_db(finished_at),
            _dump(detail),
            d.to_db(now),
            d.to_db(now),
        )
        # Values given as None keep what an earlier call stored, except that a run going back
        # to running (cleared) loses its old end time.
        kept = dict(zip(columns, values, strict=True))
        updates = {col: kept[col] for col in columns[2:11] if col != "state"}
        sets = [f"{col} = COALESCE(%s, {col})" for col in updates]
        params: list[Any] = list(updates.values())
        if state == "running" and finished_at is None:
            sets[list(updates).index("finished_at")] = "finished_at = %s"

        def work(tx: Transaction) -> None:
            tx.execute(d.upsert("pipeline_runs", columns, ("dag_id", "run_id"), ()), values)
            tx.execute(
                f"UPDATE pipeline_runs SET state = %s, updated_at = %s, {', '.join(sets)} "  # noqa: S608 (constant identifiers)
                "WHERE dag_id = %s AND run_id = %s",
                (kept["state"], kept["updated_at"], *params, dag_id, run_id),
            )

        self.transaction("record_pipeline_run", work)

    def record_build(
        self,
        ref: TaskRef,
        *,
        service: str,
        commit: str,
        image: str | None,
        digest: str | None,
        state: BuildState = "success",
        commit_message: str | None = None,
        detail: Detail = None,
    ) -> int:
        """Record the outcome of one build try; return the record id.

        :param ref: the build task's try (``TaskRef.from_context(context)``).
        :param service: catalog name of the service.
        :param commit: the commit built (sha or ref).
        :param image: the pushed image reference; None when the build failed.
        :param digest: the image digest (``sha256:...``); None when the build failed.
        :param state: ``success`` or ``failed``.
        :param commit_message: the commit's message (any Unicode).
        :param detail: JSON-serialisable extra facts.
        """
        if state not in ("success", "failed"):
            raise ValueError(f"build state must be 'success' or 'failed', not {state!r}")
        if state == "success" and not (image and digest):
            raise ValueError("a successful build needs an image and a digest")
        d = self.dialect
        now = d.to_db(_utcnow())
        columns = _cols("service commit_id commit_message image digest state", _TASK_KEY)
        columns += _cols("detail created_at updated_at")
        values = (
            _bounded("service", service, 100),
            _bounded("commit", commit, 100),
            commit_message,
            image,
            digest,
            state,
            *_ref_params(ref),
            _dump(detail),
            now,
            now,
        )
        update = _cols("service commit_id commit_message image digest state detail updated_at")
        return self._upsert_task_record("builds", columns, values, update, ref, "record_build")

    def record_test_report(
        self,
        ref: TaskRef,
        *,
        service: str,
        counts: TestCounts,
        failed_cases: Sequence[FailedCase] = (),
        commit: str | None = None,
        digest: str | None = None,
        coverage: float | None = None,
        detail: Detail = None,
    ) -> int:
        """Record one test report; return the record id.

        The report is green (state ``passed``) when no case failed or errored. At most
        200 failed cases are stored, each message cut to 2,000 characters; ``counts`` stays exact.

        :param ref: the test task's try.
        :param service: catalog name of the service.
        :param counts: totals from the JUnit report.
        :param failed_cases: the failed and errored cases.
        :param commit: the commit tested.
        :param digest: the image digest tested, when the tests ran in the built image.
        :param coverage: line coverage in percent.
        :param detail: JSON-serialisable extra facts.
        """
        d = self.dialect
        now = d.to_db(_utcnow())
        cases = [
            {
                "name": case.name,
                "classname": case.classname,
                "message": (case.message or "")[:MAX_CASE_MESSAGE_CHARS] or None,
            }
            for case in list(failed_cases)[:MAX_FAILED_CASES]
        ]
        columns = _cols(
            "service commit_id digest state tests_total tests_failed tests_errors tests_skipped "
            "failed_cases coverage",
            _TASK_KEY,
            "detail created_at updated_at",
        )
        values = (
            _bounded("service", service, 100),
            commit,
            digest,
            "passed" if counts.green else "failed",
            counts.total,
            counts.failed,
            counts.errors,
            counts.skipped,
            _dump(cases),
            coverage,
            *_ref_params(ref),
            _dump(detail),
            now,
            now,
        )
        update = tuple(c for c in columns if c not in _TASK_KEY and c != "created_at")
        return self._upsert_task_record(
            "test_reports", columns, values, update, ref, "record_test_report"
        )

    def record_quality_report(
        self,
        ref: TaskRef,
        *,
        service: str,
        gate_passed: bool,
        findings: Mapping[str, int],
        coverage: float | None = None,
        commit: str | None = None,
        digest: str | None = None,
        tool: str | None = None,
        detail: Detail = None,
    ) -> int:
        """Record one quality scan and its gate; return the record id.

        :param ref: the scan task's try.
        :param service: catalog name of the service.
        :param gate_passed: whether the quality gate passed.
        :param findings: number of findings per severity, e.g. ``{"critical": 0, "major": 3}``.
        :param coverage: coverage in percent as the scanner saw it.
        :param commit: the commit scanned.
        :param digest: the image digest the scan belongs to.
        :param tool: the analyser (``sonarqube``, ``ruff``...).
        :param detail: JSON-serialisable extra facts.
        """
        d = self.dialect
        now = d.to_db(_utcnow())
        counts = {str(k): int(v) for k, v in findings.items()}
        columns = _cols(
            "service commit_id digest gate_passed findings findings_total coverage tool",
            _TASK_KEY,
            "detail created_at updated_at",
        )
        values = (
            _bounded("service", service, 100),
            commit,
            digest,
            1 if gate_passed else 0,
            _dump(counts),
            sum(counts.values()),
            coverage,
            tool,
            *_ref_params(ref),
            _dump(detail),
            now,
            now,
        )
        update = tuple(c for c in columns if c not in _TASK_KEY and c != "created_at")
        return self._upsert_task_record(
            "quality_reports", columns, values, update, ref, "record_quality_report"
        )

    def _upsert_task_record(
        self,
        table: str,
        columns: Sequence[str],
        values: Sequence[Any],
        update: Sequence[str],
        ref: TaskRef,
        what: str,
    ) -> int:
        statement = self.dialect.upsert(table, columns, _TASK_KEY, update)

        def work(tx: Transaction) -> int:
            tx.execute(statement, values)
            row = tx.one(
                f"SELECT id FROM {table} WHERE dag_id = %s AND run_id = %s AND task_id = %s "  # noqa: S608 (constant identifiers)
                "AND map_index = %s AND try_number = %s",
                _ref_params(ref),
            )
            if row is None:
                raise RecordsError(f"{what}: the row written is not readable back")
            return int(row[0])

        return self.transaction(what, work)

    def start_release(
        self,
        *,
        service: str,
        image: str,
        digest: str,
        triggered_by: str,
        dag_id: str,
        run_id: str,
        source: AuditSource | None = None,
        started_at: datetime | None = None,
        detail: Detail = None,
    ) -> int:
        """Record the start of a release and its audit event; return the release id.

        Calling it again for the same DAG run and service returns the same id.

        :param service: catalog name of the service.
        :param image: the image released.
        :param digest: its digest.
        :param triggered_by: the person or system that asked for the release.
        :param dag_id: the release DAG.
        :param run_id: the release DAG run.
        :param source: where the request came from (ui, api, webhook, schedule...).
        :param started_at: defaults to now.
        :param detail: JSON-serialisable extra facts (reason, ticket...).
        :raises RecordsError: this run already started a release of another image.
        """
        if source is not None and source not in AUDIT_SOURCES:
            raise ValueError(f"source must be one of {sorted(AUDIT_SOURCES)}, not {source!r}")
        d = self.dialect
        now = _utcnow()
        started = started_at or now
        columns = _cols(
            "service image digest triggered_by source state dag_id run_id started_at detail "
            "created_at updated_at"
        )
        values = (
            _bounded("service", service, 100),
            _bounded("image", image, 500),
            _bounded("digest", digest, 100),
            _bounded("triggered_by", triggered_by, 250),
            source,
            "running",
            dag_id,
            run_id,
            d.to_db(started),
            _dump(detail),
            d.to_db(now),
            d.to_db(now),
        )
        insert = d.upsert("releases", columns, ("dag_id", "run_id", "service"), ())

        def work(tx: Transaction) -> int:
            tx.execute(insert, values)
            row = tx.one(
                "SELECT id, image, digest FROM releases "
                "WHERE dag_id = %s AND run_id = %s AND service = %s",
                (dag_id, run_id, service),
            )
            if row is None:
                raise RecordsError("start_release: the release row is not readable back")
            release_id, stored_image, stored_digest = int(row[0]), row[1], row[2]
            if (stored_image, stored_digest) != (image, digest):
                raise RecordsError(
                    f"run {dag_id}/{run_id} already started release {release_id} of {service} "
                    f"with {stored_image} ({stored_digest}), not {image} ({digest})"
                )
            self._insert_audit(
                tx,
                event_key=f"release.started:{release_id}",
                occurred_at=started,
                actor=triggered_by,
                action="release.started",
                target=service,
                source=source or "system",
                dag_id=dag_id,
                run_id=run_id,
                task_id=None,
                detail={"release_id": release_id, "image": image, "digest": digest},
            )
            return release_id

        return self.transaction("start_release", work)

    def finish_release(
        self,
        release_id: int,
        *,
        state: ReleaseState,
        finished_at: datetime | None = None,
        detail: Detail = None,
        actor: str | None = None,
    ) -> None:
        """Set the final state of a release and record its audit event.

        :param release_id: id from :meth:`start_release`.
        :param state: ``succeeded``, ``failed``, ``rolled_back`` or ``cancelled``.
        :param finished_at: defaults to now.
        :param detail: JSON-serialisable facts (why it failed or rolled back); replaces the
            start detail when given.
        :param actor: who finished it; defaults to whoever triggered the release.
        """
        if state not in RELEASE_STATES or state == "running":
            raise ValueError(f"a finished release state is one of {sorted(RELEASE_STATES)}")
        d = self.dialect
        now = _utcnow()
        finished = finished_at or now

        def work(tx: Transaction) -> None:
            row = tx.one(
                "SELECT service, triggered_by, source, dag_id, run_id FROM releases WHERE id = %s",
                (release_id,),
                for_update=True,
            )
            if row is None:
                raise RecordsError(f"finish_release: there is no release with id {release_id}")
            service, triggered_by, source, dag_id, run_id = row
            tx.execute(
                "UPDATE releases SET state = %s, finished_at = %s, updated_at = %s, "
                "detail = COALESCE(%s, detail) WHERE id = %s",
                (state, d.to_db(finished), d.to_db(now), _dump(detail), release_id),
            )
            self._insert_audit(
                tx,
                event_key=f"release.{state}:{release_id}",
                occurred_at=finished,
                actor=actor or triggered_by,
                action=f"release.{state}",
                target=service,
                source=source or "system",
                dag_id=dag_id,
                run_id=run_id,
                task_id=None,
                detail={"release_id": release_id, "detail": detail} if detail else None,
            )

        self.transaction("finish_release", work)

    def record_release_step(
        self,
        release_id: int,
        *,
        site: str,
        step: str,
        state: StepState,
        weights: Mapping[str, int] | None = None,
        detail: Detail = None,
        now_running: ImageRef | None = None,
    ) -> None:
        """Insert or update one step of a release at one site (key: release, site, step).

        Use distinct step names for steps that happen more than once (``readmit:25``).

        :param release_id: id from :meth:`start_release`.
        :param site: catalog name of the site.
        :param step: what happened (``drain``, ``deploy``, ``verify``, ``readmit:50``...).
        :param state: ``pending``, ``running``, ``success``, ``failed``, ``skipped`` or
            ``rolled_back``.
        :param weights: gateway traffic weight per site after the step, e.g.
            ``{"site-a": 100, "site-b": 0}``.
        :param detail: JSON-serialisable facts.
        :param now_running: the image the site runs after this step (a deploy or a rollback);
            updates the site's current image in the same transaction.
        """
        if state not in STEP_STATES:
            raise ValueError(f"step state must be one of {sorted(STEP_STATES)}, not {state!r}")
        d = self.dialect
        now = d.to_db(_utcnow())
        columns = _cols("release_id site step state weights detail created_at updated_at")
        values = (
            release_id,
            _bounded("site", site, 64),
            _bounded("step", step, 100),
            state,
            _dump(dict(weights)) if weights is not None else None,
            _dump(detail),
            now,
            now,
        )
        step_sql = d.upsert(
            "release_steps",
            columns,
            ("release_id", "site", "step"),
            ("state", "weights", "detail", "updated_at"),
        )
        image_sql = d.upsert(
            "site_images",
            ("service", "site", "image", "digest", "release_id", "updated_at"),
            ("service", "site"),
            ("image", "digest", "release_id", "updated_at"),
        )

        def work(tx: Transaction) -> None:
            tx.execute(step_sql, values)
            if now_running is not None:
                row = tx.one("SELECT service FROM releases WHERE id = %s", (release_id,))
                if row is None:
                    raise RecordsError(f"record_release_step: no release with id {release_id}")
                tx.execute(
                    image_sql,
                    (row[0], site, now_running.image, now_running.digest, release_id, now),
                )

        self.transaction("record_release_step", work)

    def record_approval(
        self,
        ref: TaskRef,
        *,
        decision: Decision,
        approver: str,
        release_id: int | None = None,
        comment: str | None = None,
        decided_at: datetime | None = None,
        source: AuditSource = "ui",
    ) -> None:
        """Record a human decision (and its audit event).

        :param ref: the approval task's try.
        :param decision: ``approved`` or ``rejected``.
        :param approver: who decided.
        :param release_id: the release the decision is about, if any.
        :param comment: what the approver wrote.
        :param decided_at: defaults to now.
        :param source: where the answer came from (``ui`` or ``api``).
        """
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {sorted(DECISIONS)}, not {decision!r}")
        d = self.dialect
        now = _utcnow()
        decided = decided_at or now
        columns = _cols(
            "release_id decision approver comment", _TASK_KEY, "decided_at created_at updated_at"
        )
        values = (
            release_id,
            decision,
            _bounded("approver", approver, 250),
            comment,
            *_ref_params(ref),
            d.to_db(decided),
            d.to_db(now),
            d.to_db(now),
        )
        update = _cols("release_id decision approver comment decided_at updated_at")
        statement = d.upsert("approvals", columns, _TASK_KEY, update)

        def work(tx: Transaction) -> None:
            tx.execute(statement, values)
            target = f"{ref.dag_id}.{ref.task_id}"
            if release_id is not None:
                row = tx.one("SELECT service FROM releases WHERE id = %s", (release_id,))
                target = row[0] if row else target
            self._insert_audit(
                tx,
                event_key="approval:" + "|".join(str(p) for p in _ref_params(ref)),
                occurred_at=decided,
                actor=approver,
                action=f"approval.{decision}",
                target=target,
                source=source,
                dag_id=ref.dag_id,
                run_id=ref.run_id,
                task_id=ref.task_id,
                detail={"release_id": release_id, "comment": comment},
            )

        self.transaction("record_approval", work)

    def audit(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        source: AuditSource,
        run_id: str | None = None,
        dag_id: str | None = None,
        task_id: str | None = None,
        detail: Detail = None,
        occurred_at: datetime | None = None,
        event_key: str | None = None,
    ) -> None:
        """Record one audit event: who did what to what, from where.

        :param actor: user name, or the system acting (``scheduler``).
        :param action: dotted verb, e.g. ``release.requested``, ``freeze.overridden``.
        :param target: what was acted on: a service, a DAG, ``dag.task``.
        :param source: ``ui``, ``api``, ``webhook``, ``schedule``, ``cli``, ``dag`` or ``system``.
        :param run_id: the DAG run involved, if any.
        :param dag_id: the DAG involved, if any.
        :param task_id: the task involved, if any.
        :param detail: JSON-serialisable facts.
        :param occurred_at: defaults to now.
        :param event_key: natural key of the event; an event with a key already recorded is not
            recorded again. Without a key the event is recorded once per call (retries of the
            call's own transaction included).
        """
        if source not in AUDIT_SOURCES:
            raise ValueError(f"source must be one of {sorted(AUDIT_SOURCES)}, not {source!r}")
        key = event_key or f"uuid:{uuid.uuid4().hex}"
        when = occurred_at or _utcnow()

        def work(tx: Transaction) -> None:
            self._insert_audit(
                tx,
                event_key=key,
                occurred_at=when,
                actor=actor,
                action=action,
                target=target,
                source=source,
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                detail=detail,
            )

        self.transaction("audit", work)

    def _insert_audit(
        self,
        tx: Transaction,
        *,
        event_key: str,
        occurred_at: datetime,
        actor: str,
        action: str,
        target: str,
        source: str,
        dag_id: str | None,
        run_id: str | None,
        task_id: str | None,
        detail: Detail,
    ) -> None:
        columns = _cols(
            "event_key occurred_at actor action target source dag_id run_id task_id detail"
        )
        tx.execute(
            self.dialect.upsert("audit_events", columns, ("event_key",), ()),
            (
                _hash_key(event_key),
                self.dialect.to_db(occurred_at),
                _bounded("actor", actor, 250),
                _bounded("action", action, 100),
                _bounded("target", target[:250], 250),
                source,
                dag_id,
                run_id,
                task_id,
                _dump(detail),
            ),
        )

    # -- release locks -------------------------------------------------------------------

    def acquire_lock(self, service: str, owner_run_id: str, ttl: timedelta | float) -> bool:
        """Take (or renew) the release lock of ``service`` for ``owner_run_id``.

        Returns True when the caller holds the lock afterwards: it was free, already held by
        the same owner (the expiry is extended), or held by another owner whose lease expired
        (taken over; logged and audited). Returns False while another owner's lease runs.
        Expiry is judged by the database server's clock, so workers' clocks do not matter.

        :param service: catalog name of the service.
        :param owner_run_id: the DAG run that wants to release it.
        :param ttl: lease length; renew before it runs out if the release takes longer.
        """
        lease = ttl if isinstance(ttl, timedelta) else timedelta(seconds=float(ttl))
        if lease <= timedelta(0):
            raise ValueError("the lock ttl must be positive")
        _bounded("service", service, 100)
        _bounded("owner_run_id", owner_run_id, 250)
        d = self.dialect
        insert = d.upsert(
            "release_locks",
            ("service", "owner_run_id", "acquired_at", "expires_at"),
            ("service",),
            (),
        )

        def work(tx: Transaction) -> tuple[bool, tuple[Any, ...] | None]:
            now = tx.db_now()
            expires = d.to_db(now + lease)
            tx.execute(insert, (service, owner_run_id, d.to_db(now), expires))
            row = tx.one(
                "SELECT owner_run_id, expires_at FROM release_locks WHERE service = %s",
                (service,),
                for_update=True,
            )
            if row is None:
                raise RecordsError(f"acquire_lock: the lock row of {service} is not readable")
            holder, holder_expires = row[0], d.from_db(row[1])
            if holder == owner_run_id:
                tx.execute(
                    "UPDATE release_locks SET expires_at = %s WHERE service = %s",
                    (expires, service),
                )
                return True, None
            if holder_expires is not None and holder_expires <= now:
                tx.execute(
                    "UPDATE release_locks SET owner_run_id = %s, acquired_at = %s, "
                    "expires_at = %s WHERE service = %s",
                    (owner_run_id, d.to_db(now), expires, service),
                )
                self._insert_audit(
                    tx,
                    event_key=f"lock.taken_over:{service}:{holder}:{owner_run_id}",
                    occurred_at=now,
                    actor=owner_run_id,
                    action="lock.taken_over",
                    target=service,
                    source="system",
                    dag_id=None,
                    run_id=owner_run_id,
                    task_id=None,
                    detail={"previous_owner": holder, "expired_at": holder_expires},
                )
                return True, (holder, holder_expires)
            return False, None

        acquired, taken_from = self.transaction("acquire_lock", work)
        if taken_from is not None:
            log.warning(
                "release lock taken over service=%s owner=%s previous_owner=%s expired_at=%s",
                service,
                owner_run_id,
                taken_from[0],
                taken_from[1],
            )
        return acquired

    def release_lock(self, service: str, owner_run_id: str) -> bool:
        """Give the lock back; True if ``owner_run_id`` held it, False if it did not."""

        def work(tx: Transaction) -> bool:
            return (
                tx.execute(
                    "DELETE FROM release_locks WHERE service = %s AND owner_run_id = %s",
                    (service, owner_run_id),
                )
                > 0
            )

        return self.transaction("release_lock", work)

    def lock_holder(self, service: str) -> LockHolder | None:
        """Who holds the release lock of ``service`` (expired leases included)."""
        d = self.dialect

        def work(tx: Transaction) -> LockHolder | None:
            row = tx.one(
                "SELECT service, owner_run_id, acquired_at, expires_at FROM release_locks "
                "WHERE service = %s",
                (service,),
            )
            if row is None:
                return None
            return LockHolder(row[0], row[1], _at(d, row[2]), _at(d, row[3]))

        return self.transaction("lock_holder", work, write=False)

    # -- queries -------------------------------------------------------------------------

    def current_images(self, service: str | None = None) -> list[SiteImage]:
        """The image each site runs, per service (one service if given)."""
        d = self.dialect
        statement = "SELECT service, site, image, digest, release_id, updated_at FROM site_images"
        params: tuple[Any, ...] = ()
        if service is not None:
            statement += " WHERE service = %s"
            params = (service,)
        statement += " ORDER BY service, site"

        def work(tx: Transaction) -> list[SiteImage]:
            return [
                SiteImage(
                    service=r[0],
                    site=r[1],
                    image=r[2],
                    digest=r[3],
                    release_id=None if r[4] is None else int(r[4]),
                    updated_at=_at(d, r[5]),
                )
                for r in tx.all(statement, params)
            ]

        return self.transaction("current_images", work, write=False)

    _RELEASE_COLUMNS = (
        "id, service, image, digest, state, triggered_by, source, dag_id, run_id, "
        "started_at, finished_at, detail"
    )

    def release_history(self, service: str, limit: int = 20) -> list[ReleaseRecord]:
        """The newest ``limit`` releases of ``service``, newest first, with their steps."""

        def work(tx: Transaction) -> list[ReleaseRecord]:
            rows = tx.all(
                f"SELECT {self._RELEASE_COLUMNS} FROM releases WHERE service = %s "  # noqa: S608 (constant identifiers)
                "ORDER BY started_at DESC, id DESC LIMIT %s",
                (service, int(limit)),
            )
            return self._releases_with_steps(tx, rows)

        return self.transaction("release_history", work, write=False)

    def get_release(self, release_id: int) -> ReleaseRecord | None:
        """One release with its steps."""

        def work(tx: Transaction) -> list[ReleaseRecord]:
            rows = tx.all(
                f"SELECT {self._RELEASE_COLUMNS} FROM releases WHERE id = %s",  # noqa: S608 (constant identifiers)
                (release_id,),
            )
            return self._releases_with_steps(tx, rows)

        found = self.transaction("get_release", work, write=False)
        return found[0] if found else None

    def release_for_run(self, dag_id: str, run_id: str, service: str) -> ReleaseRecord | None:
        """The release a DAG run started for ``service``, if any."""

        def work(tx: Transaction) -> list[ReleaseRecord]:
            rows = tx.all(
                f"SELECT {self._RELEASE_COLUMNS} FROM releases "  # noqa: S608 (constant identifiers)
                "WHERE dag_id = %s AND run_id = %s AND service = %s",
                (dag_id, run_id, service),
            )
            return self._releases_with_steps(tx, rows)

        found = self.transaction("release_for_run", work, write=False)
        return found[0] if found else None

    def _releases_with_steps(
        self, tx: Transaction, rows: list[tuple[Any, ...]]
    ) -> list[ReleaseRecord]:
        d = self.dialect
        if not rows:
            return []
        ids = [int(r[0]) for r in rows]
        marks = ", ".join(["%s"] * len(ids))
        steps: dict[int, list[ReleaseStepRecord]] = {i: [] for i in ids}
        for s in tx.all(
            "SELECT release_id, site, step, state, weights, detail, updated_at "  # noqa: S608 (constant identifiers)
            f"FROM release_steps WHERE release_id IN ({marks}) ORDER BY id",
            ids,
        ):
            steps[int(s[0])].append(
                ReleaseStepRecord(
                    site=s[1],
                    step=s[2],
                    state=s[3],
                    weights=_load(s[4]),
                    detail=_load(s[5]),
                    updated_at=_at(d, s[6]),
                )
            )
        return [
            ReleaseRecord(
                id=int(r[0]),
                service=r[1],
                image=r[2],
                digest=r[3],
                state=r[4],
                triggered_by=r[5],
                source=r[6],
                dag_id=r[7],
                run_id=r[8],
                started_at=_at(d, r[9]),
                finished_at=d.from_db(r[10]),
                detail=_load(r[11]),
                steps=tuple(steps[int(r[0])]),
            )
            for r in rows
        ]

    def last_green(self, digest: str) -> LastGreen:
        """The newest successful build, green test report and passed gate of ``digest``.

        Test and quality reports recorded with a commit but no digest count for the digest
        when the same service's green build of that commit produced it.
        """
        d = self.dialect

        def work(tx: Transaction) -> LastGreen:
            build_row = tx.one(
                "SELECT id, service, commit_id, commit_message, image, digest, state, "
                "dag_id, run_id, task_id, map_index, try_number, created_at FROM builds "
                "WHERE digest = %s AND state = 'success' ORDER BY created_at DESC, id DESC LIMIT 1",
                (digest,),
            )
            build = None
            if build_row is not None:
                r = build_row
                build = BuildRecord(
                    id=int(r[0]),
                    service=r[1],
                    commit=r[2],
                    commit_message=r[3],
                    image=r[4],
                    digest=r[5],
                    state=r[6],
                    ref=_ref_of(r[7:12]),
                    created_at=_at(d, r[12]),
                )
            test_row = self._newest_green(tx, "test_reports", "state = 'passed'", digest, build)
            test = None
            if test_row is not None:
                r = test_row
                test = TestReportRecord(
                    id=int(r[0]),
                    service=r[1],
                    commit=r[2],
                    digest=r[3],
                    state=r[4],
                    counts=TestCounts(int(r[5]), int(r[6]), int(r[7]), int(r[8])),
                    failed_cases=tuple(FailedCase(**c) for c in (_load(r[9]) or [])),
                    coverage=r[10],
                    ref=_ref_of(r[11:16]),
                    created_at=_at(d, r[16]),
                )
            scan_row = self._newest_green(tx, "quality_reports", "gate_passed = 1", digest, build)
            scan = None
            if scan_row is not None:
                r = scan_row
                scan = QualityReportRecord(
                    id=int(r[0]),
                    service=r[1],
                    commit=r[2],
                    digest=r[3],
                    gate_passed=bool(r[4]),
                    findings=_load(r[5]) or {},
                    coverage=r[7],
                    tool=r[8],
                    ref=_ref_of(r[9:14]),
                    created_at=_at(d, r[14]),
                )
            return LastGreen(digest=digest, build=build, test=test, scan=scan)

        return self.transaction("last_green", work, write=False)

    _GREEN_COLUMNS = {
        "test_reports": (
            "id, service, commit_id, digest, state, tests_total, tests_failed, tests_errors, "
            "tests_skipped, failed_cases, coverage"
        ),
        "quality_reports": (
            "id, service, commit_id, digest, gate_passed, findings, findings_total, coverage, tool"
        ),
    }

    def _newest_green(
        self,
        tx: Transaction,
        table: str,
        green: str,
        digest: str,
        build: BuildRecord | None,
    ) -> tuple[Any, ...] | None:
        columns = self._GREEN_COLUMNS[table] + (
            ", dag_id, run_id, task_id, map_index, try_number, created_at"
        )
        order = " ORDER BY created_at DESC, id DESC LIMIT 1"
        row = tx.one(
            f"SELECT {columns} FROM {table} WHERE digest = %s AND {green}" + order,  # noqa: S608 (constant identifiers)
            (digest,),
        )
        if row is None and build is not None:
            row = tx.one(
                f"SELECT {columns} FROM {table} WHERE digest IS NULL AND service = %s "  # noqa: S608 (constant identifiers)
                f"AND commit_id = %s AND {green}" + order,
                (build.service, build.commit),
            )
        return row

    def pipeline_run(self, dag_id: str, run_id: str) -> PipelineRunRecord | None:
        """The record of one DAG run, if the listener or an operator wrote it."""
        d = self.dialect

        def work(tx: Transaction) -> PipelineRunRecord | None:
            r = tx.one(
                "SELECT dag_id, run_id, state, service, commit_id, run_type, source, "
                "triggered_by, started_at, finished_at FROM pipeline_runs "
                "WHERE dag_id = %s AND run_id = %s",
                (dag_id, run_id),
            )
            if r is None:
                return None
            return PipelineRunRecord(
                dag_id=r[0],
                run_id=r[1],
                state=r[2],
                service=r[3],
                commit=r[4],
                run_type=r[5],
                source=r[6],
                triggered_by=r[7],
                started_at=d.from_db(r[8]),
                finished_at=d.from_db(r[9]),
            )

        return self.transaction("pipeline_run", work, write=False)

    def recent_audit_events(
        self,
        limit: int = 50,
        *,
        target: str | None = None,
        run_id: str | None = None,
    ) -> list[AuditEvent]:
        """The newest audit events, newest first, optionally of one target or DAG run."""
        d = self.dialect
        where: list[str] = []
        params: list[Any] = []
        if target is not None:
            where.append("target = %s")
            params.append(target)
        if run_id is not None:
            where.append("run_id = %s")
            params.append(run_id)
        statement = (
            "SELECT id, occurred_at, actor, action, target, source, dag_id, run_id, task_id, "  # noqa: S608 (constant identifiers)
            "detail FROM audit_events"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY occurred_at DESC, id DESC LIMIT %s"
        )
        params.append(int(limit))

        def work(tx: Transaction) -> list[AuditEvent]:
            return [
                AuditEvent(
                    id=int(r[0]),
                    occurred_at=_at(d, r[1]),
                    actor=r[2],
                    action=r[3],
                    target=r[4],
                    source=r[5],
                    dag_id=r[6],
                    run_id=r[7],
                    task_id=r[8],
                    detail=_load(r[9]),
                )
                for r in tx.all(statement, params)
            ]

        return self.transaction("recent_audit_events", work, write=False)


def _at(dialect: Dialect, value: Any) -> datetime:
    parsed = dialect.from_db(value)
    if parsed is None:
        raise RecordsError("a required time column is empty")
    return parsed


def _close_quietly(resource: Any) -> None:
    try:
        resource.close()
    except Exception:
        log.debug("closing a records connection failed", exc_info=True)
