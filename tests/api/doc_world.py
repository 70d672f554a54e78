"""Plays scheduler and worker for the docs test: moves a DAG run along, one command per line.

Run as a script with the docs test's Airflow environment. Reads JSON commands from stdin and
answers one JSON line each:

- ``{"do": "setup"}``: create the metadata DB, sync DAGs, migrate the records DB;
- ``{"do": "progress", "dag_id": ..}``: the newest run's first task ran once and logged;
- ``{"do": "park", "dag_id": ..}``: that task now waits for an approval;
- ``{"do": "finish", "dag_id": ..}``: the run succeeded.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SUBJECT = "Release hello-api to the second site?"


def setup() -> dict[str, Any]:
    from airflow.utils import db

    db.initdb()
    from operators.records.migrate import migrate
    from operators.records.store import RecordsStore
    from tests.api.harness import sync_dags

    with RecordsStore.from_conn_id() as store:
        migrate(store)
    sync_dags()
    return {"synced": True}


def _first_task(session: Any, dag_id: str) -> Any:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    run = session.scalars(
        select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
    ).one()
    tasks = session.scalars(
        select(TaskInstance)
        .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
        .order_by(TaskInstance.task_id)
    ).all()
    return run, tasks[0]


def progress(dag_id: str) -> dict[str, Any]:
    from airflow.utils.log.file_task_handler import FileTaskHandler
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    folder = os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]
    with create_session() as session:
        run, ti = _first_task(session, dag_id)
        run.state = DagRunState.RUNNING
        ti.try_number = 1
        ti.state = TaskInstanceState.SUCCESS
        path = os.path.join(folder, FileTaskHandler(base_log_folder=folder)._render_filename(ti, 1))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as log:
            for event in (f"{ti.task_id} started service=hello-api", f"{ti.task_id} done"):
                line = {"timestamp": "2026-12-04T10:00:00Z", "event": event, "level": "info"}
                log.write(json.dumps(line) + "\n")
        return {"run_id": run.run_id, "task_id": ti.task_id}


def park(dag_id: str) -> dict[str, Any]:
    from airflow.models.hitl import HITLDetail
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        run, ti = _first_task(session, dag_id)
        ti.state = TaskInstanceState.AWAITING_INPUT
        session.add(
            HITLDetail(ti_id=ti.id, options=["Approve", "Reject"], subject=SUBJECT, params={})
        )
        return {"run_id": run.run_id, "task_id": ti.task_id}


def finish(dag_id: str) -> dict[str, Any]:
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        run, _ = _first_task(session, dag_id)
        run.state = DagRunState.SUCCESS
        return {"run_id": run.run_id}


def main() -> None:
    actions = {"setup": setup, "progress": progress, "park": park, "finish": finish}
    for line in sys.stdin:
        command = json.loads(line)
        action = actions[command.pop("do")]
        print(json.dumps(action(**command)), flush=True)


if __name__ == "__main__":
    main()
    os._exit(0)
