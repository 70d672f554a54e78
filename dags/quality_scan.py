"""
# Quality scan

Runs the static analysis of one **service** at one **git ref** and judges its quality gate.

1. **scan.scan** checks the ref out (catalog repository URL only; nothing from the request
   reaches a shell) and runs the service's catalog `scan` step in a pod of the CI cluster (for
   the sample service: ruff and bandit). The pod's output streams into this task's log; the
   findings come back as results, normalized to critical/high/medium/low.
2. **scan.quality_gate** compares the findings per severity with the catalog's
   `quality.max_findings`. For a service with `sonarqube` in the catalog it also waits (without
   holding a worker slot) for the SonarQube analysis the scan reported and reads SonarQube's own
   gate. Coverage is judged against `quality.min_coverage` when the run measured it (the
   delivery pipeline passes its test stage's coverage); this DAG alone measures none and says so.

Results: XCom `findings` of `scan.scan`, XCom `gate` of `scan.quality_gate`, and a quality report
in the platform records. A failed gate fails the run, naming every threshold it broke.

Params: `service`, `git_ref` (a 40-hex commit id or a branch/tag name of safe characters),
`timeout_minutes` (1..120, empty for the catalog's step timeout).
"""

from __future__ import annotations

# An Airflow DAG file: the DAG is built by dags.stages.ci.ci_dag. (Airflow's DAG processor only
# parses files that mention both "airflow" and "dag".)
from dags.stages.ci import TIMEOUT_TEMPLATE, ci_dag, scan_stage

with ci_dag(
    "quality_scan",
    description="Static analysis of a service at a git ref, judged by its quality gate",
    doc_md=__doc__,
    tags=["ci", "quality", "sre"],
) as dag:
    scan_stage("{{ params.service }}", "{{ params.git_ref }}", timeout_minutes=TIMEOUT_TEMPLATE)
