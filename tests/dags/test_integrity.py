"""DAG integrity: every DAG imports cleanly and carries what an operator of the platform needs.

- every file in dags/ imports with zero errors in a fresh DagBag;
- every DAG has tags, a real owner, a Markdown doc_md and described params;
- every task that talks to something outside Airflow retries with exponential backoff and has an
  execution_timeout;
- parsing does no network or database work and pulls in no heavy client libraries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"

# Operators that only steer the flow inside Airflow: no retries or timeout needed.
CONTROL_OPERATORS = {
    "EmptyOperator",
    "ApprovalOperator",
    "HITLOperator",
    "HITLBranchOperator",
    "HITLEntryOperator",
    "BranchPythonOperator",
    "ShortCircuitOperator",
    "LatestOnlyOperator",
    "_BranchPythonDecoratedOperator",
    "_ShortCircuitDecoratedOperator",
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dag_files_import_without_errors(dagbag):
    assert dagbag.import_errors == {}, "\n".join(
        f"{path}:\n{error}" for path, error in dagbag.import_errors.items()
    )
    assert dagbag.dags, "no DAGs found in dags/"


def test_every_dag_file_defines_a_dag(dagbag):
    """A file the DAG processor skips (safe mode wants "airflow" and "dag" in it) is a lost DAG."""
    ignored = {
        line.strip().rstrip("/")
        for line in (DAGS / ".airflowignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    files = {
        path.resolve()
        for path in DAGS.rglob("*.py")
        if path.relative_to(DAGS).parts[0] not in ignored and path.name != "__init__.py"
    }
    loaded = {Path(dag.fileloc).resolve() for dag in dagbag.dags.values()}
    assert files - loaded == set(), f"files in dags/ that define no DAG: {sorted(files - loaded)}"


def _dags(dagbag):
    return sorted(dagbag.dags.values(), key=lambda dag: dag.dag_id)


def test_every_dag_has_tags_owner_and_markdown_doc(dagbag):
    problems = []
    for dag in _dags(dagbag):
        if not dag.tags:
            problems.append(f"{dag.dag_id}: no tags")
        owners = {task.owner for task in dag.tasks}
        if not owners or owners & {"airflow", "", None}:
            problems.append(
                f"{dag.dag_id}: tasks need a real owner (default_args owner), got {owners}"
            )
        doc = dag.doc_md or ""
        if len(doc.strip()) < 80 or "#" not in doc:
            problems.append(
                f"{dag.dag_id}: doc_md must be Markdown with a heading and real content"
            )
    assert not problems, "\n".join(problems)


def test_every_param_has_a_description(dagbag):
    problems = []
    for dag in _dags(dagbag):
        for name in dag.params:
            param_obj = dag.params.get_param(name)
            if not (param_obj.description or "").strip():
                problems.append(f"{dag.dag_id}: param {name!r} has no description")
    assert not problems, "\n".join(problems)


def test_tasks_that_touch_external_systems_retry_with_backoff_and_timeout(dagbag):
    problems = []
    for dag in _dags(dagbag):
        for task in dag.tasks:
            if type(task).__name__ in CONTROL_OPERATORS:
                continue
            where = f"{dag.dag_id}.{task.task_id} ({type(task).__name__})"
            if not task.retries or task.retries < 1:
                problems.append(f"{where}: retries must be >= 1")
            if not task.retry_exponential_backoff:
                problems.append(f"{where}: retry_exponential_backoff must be on")
            if task.execution_timeout is None:
                problems.append(f"{where}: execution_timeout must be set")
    assert not problems, "\n".join(problems)


def test_parsing_does_no_network_or_db_work_and_no_heavy_imports(tmp_path):
    env = dict(os.environ)
    # A metadata DB path that cannot exist: any DB access at parse time fails the import.
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tmp_path}/missing/dir/airflow.db"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    probe = Path(__file__).with_name("parse_probe.py")
    completed = subprocess.run(
        [sys.executable, str(probe), str(DAGS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["import_errors"] == {}, json.dumps(result["import_errors"], indent=2)
    assert result["dag_ids"], "no DAGs parsed"
    assert result["heavy_modules"] == [], (
        f"DAG files import heavy client libraries at parse time: {result['heavy_modules']}; "
        "import them inside execute() instead"
    )
