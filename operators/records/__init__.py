"""Platform records: builds, test and quality reports, releases, approvals, audit events, locks.

The records live in MySQL (production, the compose stack) or in a SQLite file (the embedded
default), selected by one Airflow connection: ``sre_records``, or the id named by the
environment variable ``SRE_RECORDS_CONN_ID``. Conn type ``mysql`` uses the MySQL provider's
``MySqlHook``; conn type ``sqlite`` uses the SQLite provider's ``SqliteHook``, with the absolute
path of the file after ``sqlite://``::

    AIRFLOW_CONN_SRE_RECORDS=sqlite:///srv/airflow/records.db
    AIRFLOW_CONN_SRE_RECORDS=mysql://sre:secret@mysql:3306/sre_records

The schema is created and upgraded by ``python -m operators.records migrate`` (idempotent;
the set-up script runs it every time).

Using it from an operator
-------------------------
Open the store inside ``execute`` (never at DAG parse time) and key task records by the task
try, so a retried task updates its record instead of adding one::

    from operators.records import RecordsStore, TaskRef, TestCounts, FailedCase, ImageRef

    def execute(self, context):
        ref = TaskRef.from_context(context)
        with RecordsStore.from_conn_id() as records:
            records.record_build(ref, service="hello-api", commit=sha, image=image,
                                 digest=digest, commit_message=message)
            records.record_test_report(ref, service="hello-api", digest=digest,
                                       counts=TestCounts(total=120, failed=2, skipped=3),
                                       failed_cases=[FailedCase("test_x", "pkg.Tests", "boom")],
                                       coverage=81.5)
            records.record_quality_report(ref, service="hello-api", digest=digest,
                                          gate_passed=True, findings={"major": 2},
                                          coverage=81.5, tool="ruff")

Releases::

    if not records.last_green(digest).releasable:        # build, tests and gate all green
        raise AirflowFailException("digest has no green build, test and scan")
    if not records.acquire_lock(service, owner_run_id=run_id, ttl=timedelta(hours=1)):
        raise AirflowFailException("another release of the service is running")
    release_id = records.start_release(service=..., image=..., digest=..., triggered_by=user,
                                       dag_id=dag_id, run_id=run_id, source="ui")
    records.record_release_step(release_id, site="site-b", step="drain", state="success",
                                weights={"site-a": 100, "site-b": 0})
    records.record_release_step(release_id, site="site-b", step="deploy", state="success",
                                now_running=ImageRef(image, digest))
    records.record_approval(ref, decision="approved", approver="张三", release_id=release_id)
    records.finish_release(release_id, state="succeeded")      # or failed / rolled_back
    records.release_lock(service, owner_run_id=run_id)

Writes (all keyword arguments after the key; every method is one transaction):

- ``record_pipeline_run(dag_id=, run_id=, state=, service=, commit=, run_type=, source=,
  triggered_by=, started_at=, finished_at=, detail=)``: key (dag, run); None keeps old values.
- ``record_build(ref, service=, commit=, image=, digest=, state="success", commit_message=,
  detail=) -> id``: key is the task try.
- ``record_test_report(ref, service=, counts=TestCounts, failed_cases=[FailedCase], commit=,
  digest=, coverage=, detail=) -> id``: green when no case failed or errored.
- ``record_quality_report(ref, service=, gate_passed=, findings={severity: n}, coverage=,
  commit=, digest=, tool=, detail=) -> id``.
- ``start_release(service=, image=, digest=, triggered_by=, dag_id=, run_id=, source=,
  started_at=, detail=) -> release id``: key (dag, run, service); writes the audit event too.
- ``finish_release(release_id, state=, finished_at=, detail=, actor=)``: with its audit event.
- ``record_release_step(release_id, site=, step=, state=, weights=, detail=, now_running=)``:
  key (release, site, step); ``now_running`` also sets the site's current image.
- ``record_approval(ref, decision=, approver=, release_id=, comment=, decided_at=, source=)``.
- ``audit(actor=, action=, target=, source=, run_id=, dag_id=, task_id=, detail=,
  occurred_at=, event_key=)``: ``source`` is one of ui, api, webhook, schedule, cli, dag,
  system; an ``event_key`` makes the event idempotent across calls.

Release locks: ``acquire_lock(service, owner_run_id, ttl) -> bool`` (free, same owner renews,
expired lease is taken over), ``release_lock(service, owner_run_id) -> bool``,
``lock_holder(service)``. Expiry follows the database server's clock.

Queries: ``current_images(service=None)``, ``release_history(service, limit=20)``,
``last_green(digest)``, ``get_release(id)``, ``release_for_run(dag_id, run_id, service)``,
``pipeline_run(dag_id, run_id)``, ``recent_audit_events(limit=50, target=, run_id=)``.

Failures: a dropped connection (server restart, killed connection, deadlock) runs the whole
transaction again on a new connection, a bounded number of times (``RetryPolicy``); then
:class:`RecordsUnavailableError`. Other database errors raise :class:`RecordsError`; a missing
connection raises :class:`RecordsConfigError`. Nothing is ever half-written.

Operators should type their dependency as one of the Protocols (``RecordsWriter``,
``ReleaseLocks``, ``RecordsReader`` or ``Records``) so a test can pass a fake.

Command line: ``python -m operators.records migrate|current-images|history SERVICE|
last-green DIGEST|audit [--limit N] [--json]``.
"""

from __future__ import annotations

from operators.records.dialect import DEFAULT_CONN_ID, records_conn_id
from operators.records.models import (
    AuditEvent,
    AuditSource,
    BuildRecord,
    FailedCase,
    ImageRef,
    LastGreen,
    LockHolder,
    MigrationError,
    PipelineRunRecord,
    QualityReportRecord,
    RecordsConfigError,
    RecordsError,
    RecordsUnavailableError,
    ReleaseRecord,
    ReleaseStepRecord,
    SiteImage,
    TaskRef,
    TestCounts,
    TestReportRecord,
)
from operators.records.protocol import (
    CiResultsWriter,
    Records,
    RecordsReader,
    RecordsWriter,
    ReleaseLocks,
)
from operators.records.store import RecordsStore, RetryPolicy

__all__ = [
    "DEFAULT_CONN_ID",
    "AuditEvent",
    "AuditSource",
    "BuildRecord",
    "FailedCase",
    "ImageRef",
    "LastGreen",
    "LockHolder",
    "MigrationError",
    "PipelineRunRecord",
    "QualityReportRecord",
    "Records",
    "RecordsConfigError",
    "RecordsError",
    "RecordsReader",
    "RecordsStore",
    "RecordsUnavailableError",
    "RecordsWriter",
    "CiResultsWriter",
    "ReleaseLocks",
    "ReleaseRecord",
    "ReleaseStepRecord",
    "RetryPolicy",
    "SiteImage",
    "TaskRef",
    "TestCounts",
    "TestReportRecord",
    "records_conn_id",
]
