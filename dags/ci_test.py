"""
# CI test

Runs the unit tests of one **service** at one **git ref** in a pod of the CI cluster.

1. **test.run_tests** checks the ref out (catalog repository URL only; nothing from the request
   reaches a shell) and runs the service's catalog `test` step. The pod's output streams into
   this task's log. The step reports a JUnit XML and a Cobertura coverage report as results;
   the task log shows the counts and every failing case (class, name, first message line).

The task fails when any test fails or errors, naming the failing cases; a pod failure says why
in one line. Results: XCom `tests` and `coverage` of `test.run_tests`, and a test report in the
platform records (counts, failing cases, coverage), also when the run fails.

Params: `service`, `git_ref` (a 40-hex commit id or a branch/tag name of safe characters),
`timeout_minutes` (1..120, empty for the catalog's step timeout).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from dags.stages.ci import TIMEOUT_TEMPLATE, test_stage, timeout_minutes_param
from include.params import git_ref_param, service_param

with DAG(
    dag_id="ci_test",
    description="Run a service's unit tests at a git ref, with JUnit and coverage",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["ci", "test", "sre"],
    default_args={"owner": "sre-team"},
    params={
        "service": service_param(),
        "git_ref": git_ref_param(),
        "timeout_minutes": timeout_minutes_param(),
    },
) as dag:
    test_stage("{{ params.service }}", "{{ params.git_ref }}", timeout_minutes=TIMEOUT_TEMPLATE)
