"""
# Nightly CI

Every night at **01:00 in the catalog's time zone** (`timezone` in `include/catalog.yaml`,
Asia/Shanghai by default) every service of the catalog is built, tested and scanned at the head
of its default branch: `ci_build`, then `ci_test`, then `quality_scan`, each with
`{"service": <name>, "git_ref": <default branch>}`.

## Why one DAG mapped over the catalog

The night is **one run of this DAG**: the `list_services` task reads the catalog when the run
starts and the `service` task group is mapped over it, one map index per service. Each of its
three tasks triggers the real CI DAG and waits (deferred, no worker slot) for that run to finish.

- One place shows the whole night: the grid lists every service with its three steps, and each
  step's *Triggered DAG* link opens the CI run it started, with its logs.
- The CI DAGs stay the only definition of CI: the nightly does not copy their tasks, it runs them,
  with the same params any person or the webhook would give.
- A service added to the catalog is built the next night, a removed one simply stops; no DAG ids
  appear or go stale. A DAG per service would multiply schedules, grids and paused switches to
  look after, and still not show the night in one place.
- Services do not wait for each other: one failing build stops only that service's test and scan.
  At most four services run at once (`max_active_tis_per_dagrun`).

Child runs are named `nightly__<run time>__<service>`. A step whose CI run fails is retried once,
which resets and re-runs that CI run. The schedule is a cron in the catalog's time zone
(`CronTriggerTimetable`): in zones with daylight saving time it still fires at 01:00 local time,
so the UTC time moves by an hour at each switch.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, task, task_group
from airflow.timetables.trigger import CronTriggerTimetable

from include.catalog import load_catalog

NIGHTLY_CRON = "0 1 * * *"
CI_STEPS = ("ci_build", "ci_test", "quality_scan")
MAX_PARALLEL_SERVICES = 4


@task(retries=2, retry_delay=timedelta(seconds=30), execution_timeout=timedelta(minutes=2))
def list_services(**context: Any) -> list[dict[str, Any]]:
    """One entry per catalog service: the CI conf and the child run id for tonight."""
    stamp = context["dag_run"].run_after.strftime("%Y%m%dT%H%M%S")
    return [
        {
            "conf": {"service": service.name, "git_ref": service.default_branch},
            "run_id": f"nightly__{stamp}__{service.name}",
        }
        for service in load_catalog()
    ]


@task_group(group_id="service")
def nightly_service(conf: dict[str, str], run_id: str) -> None:
    """Build, test and scan one service, each step a CI DAG run linked from its task."""
    steps = [
        TriggerDagRunOperator(
            task_id=dag_id,
            trigger_dag_id=dag_id,
            trigger_run_id=run_id,
            conf=conf,
            logical_date=None,
            wait_for_completion=True,
            poke_interval=30,
            reset_dag_run=True,
            openlineage_inject_parent_info=False,
            execution_timeout=timedelta(hours=3),
            max_active_tis_per_dagrun=MAX_PARALLEL_SERVICES,
        )
        for dag_id in CI_STEPS
    ]
    steps[0] >> steps[1] >> steps[2]


with DAG(
    dag_id="nightly_ci",
    description="Build, test and scan every catalog service at its default branch, every night",
    doc_md=__doc__,
    schedule=CronTriggerTimetable(NIGHTLY_CRON, timezone=load_catalog().timezone),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["ci", "schedule", "sre"],
    default_args={
        "owner": "sre-team",
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
    },
) as dag:
    nightly_service.expand_kwargs(list_services())
