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

from datetime import datetime

from airflow.sdk import DAG

from dags.stages.ci import TIMEOUT_TEMPLATE, scan_stage, timeout_minutes_param
from include.params import git_ref_param, service_param

with DAG(
    dag_id="quality_scan",
    description="Static analysis of a service at a git ref, judged by its quality gate",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["ci", "quality", "sre"],
    default_args={"owner": "sre-team"},
    params={
        "service": service_param(),
        "git_ref": git_ref_param(),
        "timeout_minutes": timeout_minutes_param(),
    },
) as dag:
    scan_stage("{{ params.service }}", "{{ params.git_ref }}", timeout_minutes=TIMEOUT_TEMPLATE)
