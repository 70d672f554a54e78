"""A failed DAG run's note names the failed task and its one-line error."""

from __future__ import annotations

import pytest

from plugins.run_notes import MAX_NOTE, failure_note


def test_note_names_the_first_failed_task_and_its_error():
    note = failure_note(["test.run_tests", "scan.scan"], {"test.run_tests": "6 of 42 tests failed"})
    assert note == "Failed at test.run_tests: 6 of 42 tests failed (also failed: scan.scan)"


def test_note_without_a_recorded_error_points_at_the_log():
    assert failure_note(["build.build"], {}) == "Failed at build.build: see the task's log"


def test_note_for_a_run_without_failed_tasks_and_a_long_error():
    assert "no task failed" in failure_note([], {})
    assert len(failure_note(["a"], {"a": "x" * 5000})) == MAX_NOTE


PROBE_DAG = """
from datetime import datetime

from airflow.sdk import DAG, task

with DAG("run_notes_probe", schedule=None, start_date=datetime(2026, 1, 1)) as dag:

    @task
    def fine():
        return 1

    @task
    def breaks():
        raise ValueError("digest sha256:abc has no green test report")

    fine() >> breaks()
"""


RUNNER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from run_notes_probe import dag
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session

run = dag.test()
with create_session() as session:
    stored = session.query(DagRun).filter_by(dag_id="run_notes_probe", run_id=run.run_id).one()
    print("RESULT " + json.dumps({"state": str(stored.state), "note": stored.note}), flush=True)
"""


@pytest.mark.timeout(180)
def test_failed_run_gets_the_note_from_the_recorded_error(tmp_path):
    """A real run with this repository's plugins: the audit listener records the error, the
    note listener puts it at the top of the run."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "run_notes_probe.py").write_text(PROBE_DAG, encoding="utf-8")
    env = dict(os.environ, AIRFLOW__CORE__DAGS_FOLDER=str(dags))
    completed = subprocess.run(
        [sys.executable, "-c", RUNNER, str(dags)],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    results = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert results, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = json.loads(results[-1][len("RESULT ") :])
    assert result["state"].endswith("failed")
    assert result["note"] is not None, completed.stdout[-3000:]
    assert result["note"].startswith("Failed at breaks: ")
    assert "digest sha256:abc has no green test report" in result["note"]
