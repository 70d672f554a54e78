"""Run tasks the way a worker does, or read their logs the way the UI does; in a child process.

``python -m tests.logs.worker run --dag-id D --task-id T [--task-id T2 ...] --run-id R`` parses
the DAG folder, records the DAG in the metadata DB, creates the run and queues each task instance
as the scheduler would, then hands it to Airflow's supervisor (``supervise_task``) with a log
file, exactly like an executor's worker: the task runs in a forked child, its output goes through
the supervisor into the local log file, and the remote log handler uploads that file when the
task ends. Only the Execution API is in-process instead of over HTTP. A ``RESULT`` line on stdout
says what happened to each task.

``python -m tests.logs.worker read --dag-id D --task-id T ... --run-id R --try-number N --out DIR``
asks the api-server's REST route ``GET /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/logs/{try}``
(the one behind the UI's log tab) for each task's NDJSON log stream and writes it to
``DIR/<task_id>.ndjson``; the task's extra links (``.../links``) go to ``DIR/<task_id>.links.json``.

The environment (AIRFLOW_HOME, metadata DB, logging settings, Elasticsearch host) comes from the
parent, see :func:`tests.logs.harness.airflow_env`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pendulum


def run(dag_id: str, task_ids: list[str], run_id: str) -> list[dict[str, Any]]:
    """Run each task of ``task_ids`` (one after the other) in the DAG run ``run_id``."""
    from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI
    from airflow.configuration import conf
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.executors.workloads import ExecuteTask
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.api.client import Client
    from airflow.sdk.execution_time.supervisor import supervise_task
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    bundle = manager.get_bundle("dags-folder")
    bundle.initialize()
    bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    sync_bag_to_db(bag, bundle.name, None)

    api = InProcessExecutionAPI()
    client = Client(base_url=None, token="", dry_run=True, transport=api.transport)
    client.base_url = "http://in-process.invalid./"  # type: ignore[assignment]
    outcomes = []
    for task_id in task_ids:
        with create_session() as session:
            dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
            if dag is None:
                raise SystemExit(f"DAG {dag_id} is not in the metadata DB")
            dag_run = DagRun.find(dag_id=dag_id, run_id=run_id, session=session)
            if dag_run:
                current = dag_run[0]
            else:
                now = pendulum.now("UTC")
                current = dag.create_dagrun(
                    run_id=run_id,
                    run_after=now,
                    run_type=DagRunType.MANUAL,
                    triggered_by=DagRunTriggeredByType.TEST,
                    triggering_user_name="tests",
                    state=DagRunState.RUNNING,
                    start_date=now,
                    session=session,
                )
            ti = next(
                t for t in current.get_task_instances(session=session) if t.task_id == task_id
            )
            ti.try_number += 1
            ti.state = TaskInstanceState.QUEUED
            ti.queued_dttm = pendulum.now("UTC")
            session.commit()
            session.refresh(ti)
            workload = ExecuteTask.make(ti)
        exit_code = supervise_task(
            ti=workload.ti,  # type: ignore[arg-type]
            bundle_info=workload.bundle_info,
            dag_rel_path=workload.dag_rel_path,
            token=workload.token,
            log_path=workload.log_path,
            client=client,
        )
        with create_session() as session:
            final = session.get(TaskInstance, workload.ti.id)
            state = str(final.state) if final is not None else None
        outcomes.append(
            {
                "task_id": task_id,
                "ti_id": str(workload.ti.id),
                "exit_code": exit_code,
                "state": state,
                "try_number": workload.ti.try_number,
                "map_index": workload.ti.map_index,
                "log_path": str(
                    Path(conf.get("logging", "base_log_folder")) / str(workload.log_path)
                ),
            }
        )
    return outcomes


def read(dag_id: str, task_ids: list[str], run_id: str, try_number: int, out: Path) -> None:
    """Write each task's NDJSON log stream to ``out/<task_id>.ndjson``, its extra links beside it."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app(apps="core")) as client:
        for task_id in task_ids:
            answer = client.get(
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                headers={"Accept": "application/x-ndjson"},
            )
            if answer.status_code != 200:
                raise SystemExit(f"log route answered {answer.status_code}: {answer.text[:500]}")
            (out / f"{task_id}.ndjson").write_text(answer.text, encoding="utf-8")
            links = client.get(
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links"
            )
            (out / f"{task_id}.links.json").write_text(
                json.dumps({"status": links.status_code, "body": links.json()}), encoding="utf-8"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.logs.worker")
    parser.add_argument("action", choices=["run", "read"])
    parser.add_argument("--dag-id", required=True)
    parser.add_argument(
        "--task-id", required=True, action="append", help="repeat for several tasks"
    )
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--try-number", type=int, default=1)
    parser.add_argument("--out", type=Path, help="folder the read log streams are written to")
    args = parser.parse_args(argv)
    if args.action == "run":
        outcomes = run(args.dag_id, args.task_id, args.run_id)
        sys.stdout.write("RESULT " + json.dumps(outcomes) + "\n")
    else:
        read(args.dag_id, args.task_id, args.run_id, args.try_number, args.out)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
