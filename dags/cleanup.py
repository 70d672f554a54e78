"""
# Cleanup

Every night at **04:30 in the catalog's time zone** (after the nightly CI has run):

- **delete_finished_ci_pods**: in the CI cluster (`ci.kubernetes_conn_id` of the catalog) and its
  CI namespace (`ci.namespace`), deletes pods and Jobs labelled as CI step pods
  (`kubernetes_pod_operator=True` and an `sre.io/step` label) that have finished (`Succeeded` or
  `Failed`) more than `ci_retention_hours` ago. Pending and running pods, and anything else in
  the namespace, are never touched.
- **purge_old_records**: deletes platform records older than `records_retention_days` (builds,
  test and quality reports, pipeline runs, finished releases with their steps and approvals) and
  audit events older than `audit_retention_days`. Records about an image a site still runs are
  kept. The purge itself becomes an audit event (`records.purged`).

Run it by hand to clean up sooner; the params refuse retentions below 1 hour, 7 days and 30 days.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param
from airflow.timetables.trigger import CronTriggerTimetable

from include.catalog import load_catalog
from operators.cleanup.kubernetes import CiPodCleanupOperator
from operators.cleanup.records import RecordsPurgeOperator

CLEANUP_CRON = "30 4 * * *"
CI_POD_SELECTOR = "kubernetes_pod_operator=True,sre.io/step"

catalog = load_catalog()

with DAG(
    dag_id="cleanup",
    description="Delete finished CI pods and jobs and old platform records",
    doc_md=__doc__,
    schedule=CronTriggerTimetable(CLEANUP_CRON, timezone=catalog.timezone),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["maintenance", "schedule", "sre"],
    default_args={
        "owner": "sre-team",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(minutes=30),
    },
    params={
        "ci_retention_hours": Param(
            72,
            type="integer",
            minimum=1,
            maximum=24 * 90,
            title="CI pod retention (hours)",
            description="Finished CI pods and jobs older than this are deleted.",
        ),
        "records_retention_days": Param(
            180,
            type="integer",
            minimum=7,
            maximum=3650,
            title="Records retention (days)",
            description="Builds, reports, pipeline runs and finished releases older than this are deleted.",
        ),
        "audit_retention_days": Param(
            730,
            type="integer",
            minimum=30,
            maximum=3650,
            title="Audit retention (days)",
            description="Audit events older than this are deleted.",
        ),
    },
    render_template_as_native_obj=True,
) as dag:
    CiPodCleanupOperator(
        task_id="delete_finished_ci_pods",
        kubernetes_conn_id=catalog.ci_kubernetes_conn_id,
        namespace=catalog.ci_namespace,
        label_selector=CI_POD_SELECTOR,
        retention_hours="{{ params.ci_retention_hours }}",
    )
    RecordsPurgeOperator(
        task_id="purge_old_records",
        retention_days="{{ params.records_retention_days }}",
        audit_retention_days="{{ params.audit_retention_days }}",
    )
