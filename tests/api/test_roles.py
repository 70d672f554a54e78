"""Who may do what with the FAB auth manager of the compose stack and our roles.

The api-server runs in a child process with its own AIRFLOW_HOME and SQLite metadata DB (the
auth manager is process-wide configuration): roles come from ``include.auth``, users are created
with them, DAGs are synced (DAG-level permissions included), and each user tries to trigger and
to approve.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.harness import ROOT


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("fab-home")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
            ),
            "AIRFLOW__FAB__CONFIG_FILE": str(ROOT / "include" / "auth" / "webserver_config.py"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": "fab-tests-" + "0123456789abcdef" * 4,
            "AIRFLOW__API__SECRET_KEY": "fab-tests-flask-secret",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        }
    )
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("fab_probe.py")), str(home)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(300)
def test_developer_triggers_ci_but_not_releases(outcome: dict) -> None:
    assert outcome["trigger ci_build as dev"] == 200
    assert outcome["trigger delivery_pipeline as dev"] == 403
    assert outcome["trigger dual_site_release as dev"] == 403


def test_release_manager_triggers_releases_and_ci(outcome: dict) -> None:
    assert outcome["trigger delivery_pipeline as rm"] == 200
    assert outcome["trigger dual_site_release as rm"] == 200
    assert outcome["trigger ci_build as rm"] == 200


def test_viewer_triggers_nothing(outcome: dict) -> None:
    for dag_id in ("ci_build", "delivery_pipeline", "dual_site_release"):
        assert outcome[f"trigger {dag_id} as viewer"] == 403


def test_only_the_release_manager_answers_the_release_approval(outcome: dict) -> None:
    assert outcome["approve as dev"] == 403
    assert outcome["approve as viewer"] == 403
    assert outcome["approve as rm"] == 200
    assert outcome["approved_by"] == "rm"
    assert outcome["read approval as dev"] == 200


def test_webhook_needs_no_login_and_fails_closed_without_a_secret(outcome: dict) -> None:
    assert outcome["webhook without login"] == [403, "not_configured"]


def test_role_sync_is_idempotent(outcome: dict) -> None:
    first, second = outcome["first_sync"], outcome["second_sync"]
    assert "can_edit on DAG:ci_build" in first["developer"]["added"]
    assert "can_edit on DAG:delivery_pipeline" not in first["developer"]["added"]
    assert "can_edit on HITL Detail" in first["release_manager"]["added"]
    assert second == {
        "developer": {"added": [], "removed": []},
        "release_manager": {"added": [], "removed": []},
    }
