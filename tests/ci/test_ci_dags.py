"""The three CI DAGs end to end with ``dag.test()``: the sample service at real commits of its real
git repository, steps run as pods of the Kubernetes stand-in, results in the records store."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.ci.conftest import CiWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTILE_REFS = ["main; rm -rf /", "$(id)", "--upload-pack=touch /tmp/pwned", "main\n", "a/../../b"]


def load_dag(name: str, *, retries: int | None = None) -> Any:
    """The DAG parsed again, so its params follow the test catalog."""
    module = importlib.reload(importlib.import_module(f"dags.{name}"))
    dag = module.dag
    if retries is not None:
        for task in dag.tasks:
            task.retries = retries
    return dag


def states(run: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def xcom(run: Any, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key=key)
        ).first()
        return XComModel.deserialize_value(row) if row is not None else None


def records(statement: str, *params: Any) -> list[tuple[Any, ...]]:
    from operators.records import RecordsStore

    with RecordsStore.from_conn_id() as store:
        return store.transaction("test query", lambda tx: tx.all(statement, params), write=False)


@pytest.fixture(autouse=True)
def clean_namespace(ci_world: CiWorld):
    ci_world.site.faults.clear()
    yield
    ci_world.site.faults.clear()


@pytest.mark.timeout(180)
def test_ci_build_builds_the_commit_publishes_the_image_and_records_it(ci_world: CiWorld):
    commit = ci_world.repo.tags["demo/good"]
    run = load_dag("ci_build").test(run_conf={"service": "hello-api", "git_ref": "demo/good"})
    assert states(run) == {"build.build": "success"}
    image, digest = xcom(run, "build.build", "image"), xcom(run, "build.build", "digest")
    assert xcom(run, "build.build", "commit") == commit
    assert image == f"registry.local:5000/hello-api@{digest}"
    assert (ci_world.images / f"{digest.replace(':', '-')}.tar.gz").exists()
    assert records("SELECT commit_id, image, state FROM builds WHERE run_id = %s", run.run_id) == [
        (commit, image, "success")
    ]
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = [
            event.extra
            for event in session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(
                AssetModel.uri == "sre-image://hello-api/", AssetEvent.source_run_id == run.run_id
            )
        ]
    assert [(e["digest"], e["commit"]) for e in events] == [(digest, commit)]
    assert ci_world.pods() == [], "a succeeded pod is deleted"


@pytest.mark.timeout(180)
def test_ci_test_passes_on_the_good_commit(ci_world: CiWorld):
    commit = ci_world.repo.tags["demo/good"]
    run = load_dag("ci_test").test(run_conf={"service": "hello-api", "git_ref": commit})
    assert states(run) == {"test.run_tests": "success"}
    tests = xcom(run, "test.run_tests", "tests")
    assert tests["failed"] == tests["errors"] == 0 and tests["total"] > 30
    assert xcom(run, "test.run_tests", "coverage")["percent"] > 70
    [(state, total, failed, coverage)] = records(
        "SELECT state, tests_total, tests_failed, coverage FROM test_reports WHERE run_id = %s",
        run.run_id,
    )
    assert (state, total, failed) == ("passed", tests["total"], 0) and coverage > 70


@pytest.mark.timeout(180)
def test_ci_test_fails_on_failing_tests_and_names_them(ci_world: CiWorld, capfd):
    run = load_dag("ci_test").test(run_conf={"service": "hello-api", "git_ref": "demo/tests-fail"})
    output = capfd.readouterr().out
    assert states(run) == {"test.run_tests": "failed"}
    assert "FAILED tests.test_greetings.test_greets_in_chinese (failed): AssertionError" in output
    assert "of 43 tests failed: tests.test_greetings.test_greets_in_chinese" in output
    [(state, failed, cases)] = records(
        "SELECT state, tests_failed, failed_cases FROM test_reports WHERE run_id = %s", run.run_id
    )
    assert state == "failed" and failed == 6 and "test_greets_in_chinese" in cases
    [kept] = ci_world.pods()
    assert kept.metadata.labels["already_checked"] == "True", "a failed pod is kept for debugging"
    ci_world.delete_all_pods()


@pytest.mark.timeout(180)
def test_quality_scan_passes_the_gate_with_real_analysers(ci_world: CiWorld):
    run = load_dag("quality_scan").test(run_conf={"service": "hello-api", "git_ref": "main"})
    assert states(run) == {"scan.scan": "success", "scan.quality_gate": "success"}
    findings = xcom(run, "scan.scan", "findings")
    assert set(findings["by_tool"]) == {"ruff", "bandit"} and findings["total"] > 0
    assert xcom(run, "scan.quality_gate", "gate")["passed"] is True
    [(passed, total)] = records(
        "SELECT gate_passed, findings_total FROM quality_reports WHERE run_id = %s", run.run_id
    )
    assert passed == 1 and total == findings["total"]


@pytest.mark.timeout(180)
def test_quality_scan_fails_a_strict_gate_naming_the_threshold(ci_world: CiWorld, capfd):
    run = load_dag("quality_scan").test(run_conf={"service": "hello-strict", "git_ref": "main"})
    output = capfd.readouterr().out
    assert states(run) == {"scan.scan": "success", "scan.quality_gate": "failed"}
    assert "quality gate failed: medium findings" in output and "> max 0" in output
    [(passed,)] = records("SELECT gate_passed FROM quality_reports WHERE run_id = %s", run.run_id)
    assert passed == 0


@pytest.mark.timeout(180)
def test_an_oom_killed_step_fails_with_one_line(ci_world: CiWorld, capfd):
    run = load_dag("ci_test", retries=0).test(run_conf={"service": "hello-oom", "git_ref": "main"})
    output = capfd.readouterr().out
    assert states(run) == {"test.run_tests": "failed"}
    assert "StepFailed: OOMKilled (container main, exit 137)" in output
    [(state, cases)] = records(
        "SELECT state, failed_cases FROM test_reports WHERE run_id = %s", run.run_id
    )
    assert state == "failed" and "OOMKilled" in cases
    ci_world.delete_all_pods()


@pytest.mark.timeout(180)
def test_a_burst_of_429s_is_retried_and_the_build_passes(ci_world: CiWorld, capfd):
    ci_world.site.faults.throttle(count=6, retry_after=1, path="/pods")
    run = load_dag("ci_build").test(run_conf={"service": "hello-api", "git_ref": "main"})
    output = capfd.readouterr().out
    assert states(run) == {"build.build": "success"}
    assert ci_world.site.faults.list() == [], "every throttled answer was used up"
    assert "429" in output


@pytest.mark.timeout(120)
@pytest.mark.parametrize("dag_id", ["ci_build", "ci_test", "quality_scan"])
def test_hostile_git_refs_are_refused_before_anything_runs(ci_world: CiWorld, dag_id: str):
    from airflow.sdk.exceptions import ParamValidationError

    dag = load_dag(dag_id)
    for ref in HOSTILE_REFS:
        with pytest.raises(ParamValidationError, match="git_ref"):
            dag.test(run_conf={"service": "hello-api", "git_ref": ref})
    for minutes in (0, 121, "15; id"):
        with pytest.raises(ParamValidationError, match="timeout_minutes"):
            dag.test(
                run_conf={"service": "hello-api", "git_ref": "main", "timeout_minutes": minutes}
            )
    with pytest.raises(ParamValidationError, match="service"):
        dag.test(run_conf={"service": "no-such-service", "git_ref": "main"})
    assert ci_world.pods() == []
