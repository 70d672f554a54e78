"""
# Delivery pipeline

Takes one **service** from the service catalog at one **git_ref** all the way from source to
both active-active sites, in one run you can follow stage by stage in the grid:

| stage | group | what happens |
|---|---|---|
| 1 | `build` | check out the ref in a CI pod, build, produce an image pinned by digest |
| 2 | `test` | run the service's tests **at the commit that was built**; JUnit and coverage recorded; any failing case stops the run |
| 3 | `scan` | static analysis and the quality gate (catalog thresholds, SonarQube when configured) |
| 4 | `release` | the dual-site release of **exactly the image that was built, tested and scanned** |

The build pushes `image`, `digest` and `commit` to XCom; later stages pull them, so a moving
branch cannot slip a different commit into the tests or the release. Each stage retries its
tasks with exponential backoff and has its own time limit; a failed stage stops the flow and its
task's error says why in one line (for example `OOMKilled (container main, exit 137)` or
`3 of 42 tests failed: test_greets_in_chinese, ...`).

The release stage is the same task group as the `dual_site_release` DAG: secondary site first,
drain → deploy → verify → re-admit in steps → bake, an approval before the second site when the
catalog asks for it, and automatic rollback one site at a time. Every stage writes to the
platform records (`python -m operators.records history <service>`).

**Params**: `service` (a catalog service), `git_ref` (a 40-hex commit or a branch/tag name of
letters, digits and `. _ / -`). Trigger it from the form, the REST API
(`POST /api/v2/dags/delivery_pipeline/dagRuns`) or a push to a release branch (Git webhook).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from dags.stages.ci import build_stage, scan_stage, test_stage
from dags.stages.release import release_stage
from include.params import git_ref_param, service_param

SERVICE = "{{ params.service }}"
BUILT = "{{{{ ti.xcom_pull(task_ids='build.build', key='{key}') }}}}"

with DAG(
    dag_id="delivery_pipeline",
    description="Build, test, scan and release one service at one commit to both sites",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=4,
    tags=["delivery", "release", "ci", "sre"],
    default_args={"owner": "sre-team"},
    params={"service": service_param(), "git_ref": git_ref_param()},
) as dag:
    build = build_stage(SERVICE, "{{ params.git_ref }}")
    commit = BUILT.format(key="commit")
    digest = BUILT.format(key="digest")
    test = test_stage(SERVICE, commit, digest=digest)
    scan = scan_stage(SERVICE, commit, digest=digest, coverage_task_id="test.run_tests")
    release = release_stage(SERVICE, BUILT.format(key="image"))
    build >> test >> scan >> release
