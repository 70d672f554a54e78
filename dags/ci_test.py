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

# An Airflow DAG file: the DAG is built by dags.stages.ci.ci_dag. (Airflow's DAG processor only
# parses files that mention both "airflow" and "dag".)
from dags.stages.ci import TIMEOUT_TEMPLATE, ci_dag, test_stage

with ci_dag(
    "ci_test",
    description="Run a service's unit tests at a git ref, with JUnit and coverage",
    doc_md=__doc__,
    tags=["ci", "test", "sre"],
) as dag:
    test_stage("{{ params.service }}", "{{ params.git_ref }}", timeout_minutes=TIMEOUT_TEMPLATE)
