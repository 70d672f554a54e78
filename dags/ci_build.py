"""
# CI build

Checks out one **service** (by its name in the service catalog) at one **git ref** and builds it
into an image pinned by its content digest.

1. **build.build** runs the service's catalog `build` step as a pod in the CI cluster: init
   containers clone the catalog's repository URL and check out the ref (nothing from the
   request reaches a shell), then the build step runs in the checkout and reports its image.
   The pod's output streams into this task's log.

Results: XCom `image`, `digest` and `commit` of `build.build`; an asset event on
`sre-image://<service>` (through the alias `sre-image`) with the digest in its extra; a build
record in the platform records, also when the build fails. A failure says why in one line
(exit code and last lines, OOMKilled, image pull error, unschedulable).

Params: `service`, `git_ref` (a 40-hex commit id or a branch/tag name of safe characters),
`timeout_minutes` (1..120, empty for the catalog's step timeout).
"""

from __future__ import annotations

# An Airflow DAG file: the DAG is built by dags.stages.ci.ci_dag. (Airflow's DAG processor only
# parses files that mention both "airflow" and "dag".)
from dags.stages.ci import TIMEOUT_TEMPLATE, build_stage, ci_dag

with ci_dag(
    "ci_build",
    description="Check out a service at a git ref and build a digest-pinned image",
    doc_md=__doc__,
    tags=["ci", "build", "sre"],
) as dag:
    build_stage("{{ params.service }}", "{{ params.git_ref }}", timeout_minutes=TIMEOUT_TEMPLATE)
