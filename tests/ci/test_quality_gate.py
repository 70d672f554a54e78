"""The quality gate: thresholds, SonarQube's web API (through its stand-in) and the operator."""

from __future__ import annotations

import asyncio
import json

import pytest

from include.catalog import QualityGate, Service, load_catalog
from operators.ci.quality import QualityGateOperator, evaluate
from operators.ci.sonarqube import SonarQubeClient, SonarQubeError, SonarQubeGateTrigger
from sandbox.sonarqube import run_sonarqube
from tests.ci.fakes import FakeRecorder, FakeTaskInstance, context_for

GATE = QualityGate(
    min_coverage=70, max_findings={"critical": 0, "high": 0, "medium": 10, "low": 100}
)


def test_thresholds_pass_and_fail_with_every_reason_named():
    ok = evaluate(GATE, {"medium": 6, "low": 3}, 88.7)
    assert (
        ok.passed
        and ok.reasons == []
        and ok.counts == {"critical": 0, "high": 0, "medium": 6, "low": 3}
    )
    bad = evaluate(GATE, {"high": 2, "medium": 11}, 65.0)
    assert not bad.passed
    assert bad.reasons == [
        "high findings 2 > max 0",
        "medium findings 11 > max 10",
        "coverage 65.00% < min 70%",
    ]


def test_unmeasured_coverage_is_noted_not_judged():
    verdict = evaluate(GATE, {}, None)
    assert verdict.passed and verdict.notes == [
        "coverage not measured in this run; min_coverage 70% not checked"
    ]


@pytest.fixture
def sonar():
    with run_sonarqube() as stand_in:
        yield stand_in


def test_client_retries_throttling_and_server_errors(sonar):
    sonar.add_task("T1", ["IN_PROGRESS", "SUCCESS"], "A1")
    sonar.set_gate("A1", "OK")
    sonar.add_fault(429, count=2, retry_after=1)
    sonar.add_fault(503, count=1)
    client = SonarQubeClient(sonar.url, sonar.token)
    assert client.ce_task("T1")["status"] == "IN_PROGRESS"
    assert client.ce_task("T1")["analysisId"] == "A1"
    assert client.project_status("A1")["status"] == "OK"
    assert len(sonar.requests) == 2 + 1 + 3


def test_client_reports_real_errors_at_once(sonar):
    with pytest.raises(SonarQubeError, match="HTTP 401: Authentication required"):
        SonarQubeClient(sonar.url, "wrong").ce_task("T1")
    with pytest.raises(SonarQubeError, match="HTTP 404: No activity found for task 'nope'"):
        SonarQubeClient(sonar.url, sonar.token).ce_task("nope")
    sonar.add_fault(503, count=10)
    with pytest.raises(SonarQubeError, match=r"kept failing \(HTTP 503\) after 2 tries"):
        SonarQubeClient(sonar.url, sonar.token, attempts=2).ce_task("T1")


def run_trigger(trigger):
    async def first():
        return await anext(trigger.run())

    return asyncio.run(first()).payload


def test_trigger_waits_for_the_analysis_then_reads_the_gate(sonar, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SONAR_UNIT",
        json.dumps({"conn_type": "http", "host": sonar.url, "password": sonar.token}),
    )
    sonar.add_task("T2", ["PENDING", "IN_PROGRESS", "SUCCESS"], "A2")
    sonar.set_gate(
        "A2",
        "ERROR",
        [
            {
                "status": "ERROR",
                "metricKey": "coverage",
                "actualValue": "41.0",
                "errorThreshold": "80",
            }
        ],
    )
    trigger = SonarQubeGateTrigger("sonar_unit", "T2", poll_interval=0.05)
    classpath, kwargs = trigger.serialize()
    assert classpath == "operators.ci.sonarqube.SonarQubeGateTrigger"
    assert kwargs == {
        "conn_id": "sonar_unit",
        "ce_task_id": "T2",
        "poll_interval": 0.05,
        "deadline": None,
    }
    event = run_trigger(SonarQubeGateTrigger(**kwargs))
    assert event["status"] == "success"
    assert event["details"]["gate"]["status"] == "ERROR"
    assert sonar.token not in json.dumps(event)


def test_trigger_reports_a_failed_analysis(sonar, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SONAR_UNIT",
        json.dumps({"conn_type": "http", "host": sonar.url, "password": sonar.token}),
    )
    sonar.add_task("T3", ["FAILED"], error_message="Quality profile not found")
    event = run_trigger(SonarQubeGateTrigger("sonar_unit", "T3", poll_interval=0.05))
    assert event["status"] == "failed"
    assert event["message"] == "SonarQube analysis FAILED: Quality profile not found"


def gate_operator(recorder, **kwargs):
    return QualityGateOperator(
        task_id="scan.quality_gate",
        service="order-service",
        git_ref="main",
        scan_task_id="scan.scan",
        coverage_task_id="test.run_tests",
        recorder_factory=recorder.factory(),
        poll_interval=0.05,
        **kwargs,
    )


def scan_xcom(counts, coverage=85.0, ce_task_id="T9"):
    xcom = {
        ("scan.scan", "findings"): {"counts": counts, "by_tool": {"ruff": 1, "bandit": 0}},
        ("test.run_tests", "coverage"): {"percent": coverage},
        ("scan.scan", "commit"): "5cb631f52ce09aa1678db0f882ba81c1d2d39642",
    }
    if ce_task_id:
        xcom[("scan.scan", "sonarqube")] = {"ce_task_id": ce_task_id}
    return xcom


def test_operator_combines_thresholds_and_the_sonarqube_gate(sonar, monkeypatch):
    order_service: Service = load_catalog().service("order-service")
    assert order_service.sonarqube is not None
    conn = order_service.sonarqube.conn_id
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn.upper()}",
        json.dumps({"conn_type": "http", "host": sonar.url, "password": sonar.token}),
    )
    sonar.add_task("T9", ["IN_PROGRESS", "SUCCESS"], "A9")
    sonar.set_gate(
        "A9",
        "ERROR",
        [{"status": "ERROR", "metricKey": "new_bugs", "actualValue": "3", "errorThreshold": "0"}],
    )
    recorder = FakeRecorder()
    ti = FakeTaskInstance("scan.quality_gate", scan_xcom({"medium": 1}))
    operator = gate_operator(recorder, deferrable=True)
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context_for(ti))
    event = run_trigger(deferred.value.trigger)
    with pytest.raises(
        AirflowFailException,
        match="quality gate failed: SonarQube gate ERROR: new_bugs 3 \\(limit 0\\)",
    ):
        operator.execute_complete(context_for(ti), event)
    ((method, written),) = recorder.writes
    assert method == "quality" and written["gate_passed"] is False
    assert written["findings"] == {"critical": 0, "high": 0, "medium": 1, "low": 0}
    assert (
        written["coverage"] == 85.0
        and written["commit"] == "5cb631f52ce09aa1678db0f882ba81c1d2d39642"
    )
    assert ti.pushed["gate"]["sonarqube"] == "ERROR"


def test_operator_passes_without_deferring_when_waiting_here(sonar, monkeypatch):
    conn = load_catalog().service("order-service").sonarqube.conn_id
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn.upper()}",
        json.dumps({"conn_type": "http", "host": sonar.url, "password": sonar.token}),
    )
    sonar.add_task("T9", ["PENDING", "SUCCESS"], "A9")
    sonar.set_gate("A9", "OK")
    sonar.add_fault(429, count=1, retry_after=1)
    recorder = FakeRecorder()
    ti = FakeTaskInstance("scan.quality_gate", scan_xcom({"low": 4}))
    result = gate_operator(recorder, deferrable=False).execute(context_for(ti))
    assert result["passed"] is True and result["sonarqube"] == "OK"
    assert recorder.writes[0][1]["gate_passed"] is True


def test_operator_needs_the_scans_sonarqube_task_id():
    from airflow.sdk.exceptions import AirflowFailException

    recorder = FakeRecorder()
    ti = FakeTaskInstance("scan.quality_gate", scan_xcom({}, ce_task_id=None))
    with pytest.raises(AirflowFailException, match="the scan reported no SonarQube task id"):
        gate_operator(recorder, deferrable=True).execute(context_for(ti))
    assert recorder.writes[0][1]["gate_passed"] is False
