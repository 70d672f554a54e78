"""The CI stages as task groups: build, test and quality scan of one service at one git ref.

Each factory takes templated strings, so the same group serves its standalone DAG
(``"{{ params.service }}"``) and the delivery pipeline (values pulled from another task). Every
task runs the service's catalog step as a pod in the CI cluster (``operators.ci``), streams the
pod's log into the task log, records its result in the platform records and retries with
exponential backoff.

Task ids and XCom keys (``<group>`` is the ``group_id`` passed, by default the stage name):

| task id | XCom key | value |
|---|---|---|
| ``<group>.build`` (build_stage) | ``image`` | ``registry/repo@sha256:<64 hex>`` |
| | ``digest`` | ``sha256:<64 hex>`` |
| | ``commit`` | the 40-hex commit that was built |
| | ``return_value`` | ``{"image", "digest", "commit"}`` |
| ``<group>.run_tests`` (test_stage) | ``tests`` | ``{"total", "passed", "failed", "errors", "skipped", "failed_cases": [{"classname", "name", "outcome", "message"}]}`` |
| | ``coverage`` | ``{"percent", "lines_covered", "lines_valid"}`` |
| | ``commit`` | the commit that was tested |
| ``<group>.scan`` (scan_stage) | ``findings`` | ``{"counts": {"critical", "high", "medium", "low"}, "by_tool", "total", "top": [...]}`` |
| | ``sonarqube`` | ``{"ce_task_id", ...}`` when the scan reported a SonarQube analysis |
| | ``commit`` | the commit that was scanned |
| ``<group>.quality_gate`` (scan_stage) | ``gate`` | ``{"passed", "reasons", "notes", "counts", "coverage", "sonarqube"}`` |

Every step task also pushes ``pod_name`` and ``pod_namespace``. A successful build publishes an
asset event through the alias ``sre-image`` on the asset ``sre-image://<service>``, with
``image``, ``digest``, ``commit``, ``service`` and ``git_ref`` in its extra.

The delivery pipeline chains them, e.g.::

    build = build_stage(service, ref)
    digest = "{{ ti.xcom_pull(task_ids='build.build', key='digest') }}"
    test = test_stage(service, ref, digest=digest)
    scan = scan_stage(service, ref, digest=digest, coverage_task_id="test.run_tests")
    build >> test >> scan
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import TaskGroup

IMAGE_ALIAS = "sre-image"
MAX_TIMEOUT_MINUTES = 120
# Renders the optional ``timeout_minutes`` param as the stages expect it: empty for the catalog's.
TIMEOUT_TEMPLATE = "{{ params.timeout_minutes if params.timeout_minutes is not none else '' }}"
STEP_RETRY = {
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=5),
}


def timeout_minutes_param() -> Any:
    """The optional ``timeout_minutes`` param of the CI DAGs: 1..120, empty for the catalog's."""
    from airflow.sdk import Param

    return Param(
        None,
        type=["null", "integer"],
        minimum=1,
        maximum=MAX_TIMEOUT_MINUTES,
        title="Timeout (minutes)",
        description="Time limit of the step's pod, 1 to 120 minutes; empty for the service catalog's timeout_minutes.",
    )


def ci_dag(dag_id: str, *, description: str, doc_md: str | None, tags: list[str]) -> Any:
    """A standalone CI DAG: triggered by hand, the REST API or the nightly run, with the params
    every CI DAG takes (``service``, ``git_ref``, ``timeout_minutes``)."""
    from datetime import datetime

    from airflow.sdk import DAG

    from include.params import git_ref_param, service_param

    return DAG(
        dag_id=dag_id,
        description=description,
        doc_md=doc_md,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=tags,
        default_args={"owner": "sre-team"},
        params={
            "service": service_param(),
            "git_ref": git_ref_param(),
            "timeout_minutes": timeout_minutes_param(),
        },
    )


def _step_timeout(step: str) -> timedelta:
    """Backstop for a step task: the longest the catalog or an override allows, plus slack."""
    from include.catalog import load_catalog

    catalog_minutes = [
        service.steps[step].timeout_minutes for service in load_catalog() if step in service.steps
    ]
    return timedelta(minutes=max([MAX_TIMEOUT_MINUTES, *catalog_minutes]) + 15)


def _step_task(
    task_id: str, step: str, service: str, git_ref: str, timeout_minutes: str, **kwargs: Any
) -> Any:
    from operators.ci.tasks import CiStepOperator

    return CiStepOperator(
        task_id=task_id,
        service=service,
        step=step,
        git_ref=git_ref,
        timeout_minutes=timeout_minutes,
        execution_timeout=_step_timeout(step),
        **STEP_RETRY,
        **kwargs,
    )


def build_stage(
    service: str, git_ref: str, *, timeout_minutes: str = "", group_id: str = "build"
) -> TaskGroup:
    """Check out ``git_ref`` of ``service`` and build it into a digest-pinned image.

    :param service: catalog name of the service (templated string).
    :param git_ref: commit id or safe branch/tag name (templated string).
    :param timeout_minutes: step limit, empty for the catalog's (templated string).
    :param group_id: id of the task group.
    """
    from airflow.sdk import AssetAlias

    with TaskGroup(group_id=group_id, tooltip="Check out and build an image") as group:
        _step_task(
            "build",
            "build",
            service,
            git_ref,
            timeout_minutes,
            image_alias=IMAGE_ALIAS,
            outlets=[AssetAlias(IMAGE_ALIAS)],
            doc_md="Clone the catalog repository at the ref, run the build step, report the image digest.",
        )
    return group


def test_stage(
    service: str,
    git_ref: str,
    *,
    digest: str = "",
    timeout_minutes: str = "",
    group_id: str = "test",
) -> TaskGroup:
    """Run the service's tests at ``git_ref``; fail on any failing case.

    :param service: catalog name of the service (templated string).
    :param git_ref: commit id or safe branch/tag name (templated string).
    :param digest: digest of the image built from that ref, for the records (templated string).
    :param timeout_minutes: step limit, empty for the catalog's (templated string).
    :param group_id: id of the task group.
    """
    with TaskGroup(group_id=group_id, tooltip="Unit tests with JUnit and coverage") as group:
        _step_task(
            "run_tests",
            "test",
            service,
            git_ref,
            timeout_minutes,
            digest=digest,
            doc_md="Run the test step; counts, failing cases and coverage come back as results.",
        )
    return group


def scan_stage(
    service: str,
    git_ref: str,
    *,
    digest: str = "",
    coverage_task_id: str | None = None,
    timeout_minutes: str = "",
    group_id: str = "scan",
) -> TaskGroup:
    """Run static analysis at ``git_ref`` and judge the service's quality gate.

    :param service: catalog name of the service (templated string).
    :param git_ref: commit id or safe branch/tag name (templated string).
    :param digest: digest of the image built from that ref, for the records (templated string).
    :param coverage_task_id: full task id of a test step whose coverage the gate judges.
    :param timeout_minutes: step limit, empty for the catalog's (templated string).
    :param group_id: id of the task group.
    """
    from operators.ci.quality import QualityGateOperator

    with TaskGroup(group_id=group_id, tooltip="Static analysis and quality gate") as group:
        scan = _step_task(
            "scan",
            "scan",
            service,
            git_ref,
            timeout_minutes,
            digest=digest,
            doc_md="Run the scan step (lint and security analysers); findings come back as results.",
        )
        gate = QualityGateOperator(
            task_id="quality_gate",
            service=service,
            git_ref=git_ref,
            digest=digest,
            scan_task_id=group.child_id("scan"),
            coverage_task_id=coverage_task_id,
            execution_timeout=timedelta(minutes=40),
            doc_md="Catalog thresholds over findings and coverage; SonarQube's gate when configured.",
            **STEP_RETRY,
        )
        scan >> gate
    return group
