"""Airflow's real api-server app, in-process, for the API, webhook and fuzz tests.

One app per test session (building it takes seconds): the simple auth manager with three named
users, the repository's plugins (the Git webhook among them), DAGs from dags/ synced into the
test metadata DB. Configuration is environment variables, applied per test module by :func:`applied_env` and
restored afterwards, so other test folders see the suite's own settings.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
PIPELINE_DAG_IDS = ("delivery_pipeline", "ci_build", "ci_test", "quality_scan", "dual_site_release")

USERS = {"admin": "admin", "dev": "user", "viewer": "viewer"}
PASSWORDS = {"admin": "admin-test-pw", "dev": "dev-test-pw", "viewer": "viewer-test-pw"}
JWT_SECRET = "api-tests-" + "0123456789abcdef" * 4
WEBHOOK_SECRETS = {
    "github": "gh-test-secret",
    "gitlab": "gl-test-secret",
    "gitee": "ge-test-secret",
}
RUN_STARTERS = (*USERS, *(f"{source}-webhook" for source in WEBHOOK_SECRETS))


@cache
def work_dir() -> Path:
    """Files of this process's api-server (passwords, records DB), removed when it exits."""
    path = Path(tempfile.mkdtemp(prefix="sre-api-tests-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def environment() -> dict[str, str]:
    """Environment the in-process api-server and its plugin read at request time."""
    work = work_dir()
    env = {
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(work / "passwords.json"),
        "AIRFLOW_CONN_SRE_RECORDS": f"sqlite://{work / 'records.db'}",
        "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
    }
    for source, secret in WEBHOOK_SECRETS.items():
        env[f"AIRFLOW_CONN_GIT_WEBHOOK_{source.upper()}"] = json.dumps(
            {"conn_type": "generic", "password": secret}
        )
    return env


@contextmanager
def applied_env(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then restore what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class ApiServer:
    """The app, a client for it, tokens per user and views into the metadata DB."""

    client: Any
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str) -> str:
        if user not in self._tokens:
            answer = self.client.post(
                "/auth/token", json={"username": user, "password": PASSWORDS[user]}
            )
            assert answer.status_code == 201, answer.text
            self._tokens[user] = answer.json()["access_token"]
        return self._tokens[user]

    def auth(self, user: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}

    def trigger(self, dag_id: str, body: Any, user: str = "admin") -> Any:
        return self.client.post(
            f"/api/v2/dags/{dag_id}/dagRuns", json=body, headers=self.auth(user)
        )


def dag_runs(dag_id: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(dag_id, run_id, conf) of the runs these tests' users and the webhook started.

    Other test folders may use the same metadata DB at the same time; their runs (``dag.test()``,
    other users) are not counted.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(DagRun.dag_id, DagRun.run_id, DagRun.conf).where(
        DagRun.triggering_user_name.in_(RUN_STARTERS)
    )
    if dag_id is not None:
        query = query.where(DagRun.dag_id == dag_id)
    with create_session() as session:
        return sorted((d, r, dict(c or {})) for d, r, c in session.execute(query).all())


def delete_runs(keys: set[tuple[str, str]]) -> None:
    """Remove DAG runs a test created, so the shared test DB stays as other folders expect."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import and_, delete, or_

    if not keys:
        return
    with create_session() as session:
        condition = or_(*(and_(DagRun.dag_id == d, DagRun.run_id == r) for d, r in keys))
        session.execute(
            delete(DagRun).where(condition, DagRun.triggering_user_name.in_(RUN_STARTERS))
        )


def sync_dags() -> None:
    """Serialize dags/ into the metadata DB."""
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    with create_session() as session:
        if session.get(DagBundleModel, "dags-folder") is None:
            session.add(DagBundleModel(name="dags-folder"))
    bag = DagBag(dag_folder=DAGS, bundle_path=DAGS, bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, "dags-folder", None)


def _dags_present() -> bool:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        found = session.scalar(
            select(func.count())
            .select_from(DagModel)
            .where(DagModel.dag_id.in_(PIPELINE_DAG_IDS), ~DagModel.is_stale)
        )
    return found == len(PIPELINE_DAG_IDS)


def _prepare_files() -> None:
    (work_dir() / "passwords.json").write_text(json.dumps(PASSWORDS))


def _migrate_records() -> None:
    from operators.records.migrate import migrate
    from operators.records.store import RecordsStore

    with RecordsStore.from_conn_id() as store:
        migrate(store)


@cache
def _server() -> ApiServer:
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    _prepare_files()
    _migrate_records()
    sync_dags()
    purge_cached_app()
    return ApiServer(client=TestClient(create_app()))


@contextmanager
def api_server() -> Iterator[ApiServer]:
    """The session's api-server with its environment applied; DAG runs made inside are removed."""
    with applied_env(environment()):
        server = _server()
        if not _dags_present():
            sync_dags()
        before = {(d, r) for d, r, _ in dag_runs()}
        try:
            yield server
        finally:
            delete_runs({(d, r) for d, r, _ in dag_runs()} - before)


def records_audit_events(limit: int = 500) -> list[Any]:
    """Newest audit events of the session's records store."""
    from operators.records.store import RecordsStore

    with applied_env(environment()), RecordsStore.from_conn_id() as store:
        return list(store.recent_audit_events(limit))
