"""Drive the api-server with the FAB auth manager and our roles; print what each user may do.

Run as a script by test_roles.py, in a process of its own with a throwaway AIRFLOW_HOME and
SQLite metadata DB (the auth manager is process-wide configuration). Prints one JSON object:
the HTTP status per (user, action).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

PASSWORD = "fab-test-pw"
USERS = {"dev": "developer", "rm": "release_manager", "viewer": "Viewer"}
IMAGE = "registry.local:5000/hello-api@sha256:" + "a" * 64


def main(home: Path) -> dict[str, object]:
    from airflow.utils import db

    db.initdb()
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    from include.auth import sync_roles

    with get_application_builder() as appbuilder:
        security = appbuilder.sm
        first_sync = sync_roles(security)
        second_sync = sync_roles(security)
        for user, role in USERS.items():
            security.add_user(
                user, user, "Tester", f"{user}@example.com", security.find_role(role), PASSWORD
            )
    from tests.api.harness import sync_dags

    sync_dags()
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app())
    tokens = {}
    for user in USERS:
        answer = client.post("/auth/token", json={"username": user, "password": PASSWORD})
        assert answer.status_code == 201, answer.text
        tokens[user] = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    confs = {
        "ci_build": {"service": "hello-api", "git_ref": "main"},
        "delivery_pipeline": {"service": "hello-api", "git_ref": "main"},
        "dual_site_release": {"service": "order-service", "image": IMAGE},
    }
    result: dict[str, object] = {
        "first_sync": first_sync,
        "second_sync": second_sync,
    }
    runs = {}
    for user in ("dev", "viewer", "rm"):
        for dag_id, conf in confs.items():
            answer = client.post(
                f"/api/v2/dags/{dag_id}/dagRuns",
                json={"logical_date": None, "conf": conf},
                headers=tokens[user],
            )
            result[f"trigger {dag_id} as {user}"] = answer.status_code
            if answer.status_code == 200:
                runs[dag_id] = answer.json()["dag_run_id"]
    release_run = runs["dual_site_release"]
    task_id = _park_approval("dual_site_release", release_run)
    path = f"/api/v2/dags/dual_site_release/dagRuns/{release_run}/taskInstances/{task_id}/-1/hitlDetails"
    body = {"chosen_options": ["Approve"], "params_input": {}}
    for user in ("dev", "viewer", "rm"):
        answer = client.patch(path, json=body, headers=tokens[user])
        result[f"approve as {user}"] = answer.status_code
        if answer.status_code == 200:
            result["approved_by"] = answer.json()["responded_by"]["name"]
    result["read approval as dev"] = client.get(path, headers=tokens["dev"]).status_code
    hook = client.post(
        "/sre/webhooks/git",
        content=b"{}",
        headers={"Content-Type": "application/json", "X-GitHub-Event": "push"},
    )
    result["webhook without login"] = [hook.status_code, hook.json().get("reason")]
    return result


def _park_approval(dag_id: str, run_id: str) -> str:
    """Put the run's second-site approval where a running release leaves it: awaiting input."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    with create_session() as session:
        query = select(TaskInstance).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
        (ti,) = [t for t in session.scalars(query) if t.task_id.endswith("approve_second_site")]
        ti.state = TaskInstanceState.AWAITING_INPUT
        session.add(
            HITLDetail(
                ti_id=ti.id,
                options=["Approve", "Reject"],
                subject="Release order-service to the second site?",
                params={},
                multiple=False,
            )
        )
        return ti.task_id


if __name__ == "__main__":
    home = Path(sys.argv[1])
    print(json.dumps(main(home)))
    os._exit(0)
