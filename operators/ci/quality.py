"""The quality gate: catalog thresholds over scan findings and coverage, plus SonarQube's gate.

:func:`evaluate` is pure: it compares findings per severity with ``quality.max_findings`` and
coverage with ``quality.min_coverage``. Coverage that was not measured in the run (no test stage
upstream) is reported as such and does not decide the gate.

:class:`QualityGateOperator` reads the scan step's XCom ``findings`` (and the test step's
``coverage`` when given), and, for a service with ``sonarqube`` in the catalog, waits for the
SonarQube analysis the scan reported (XCom ``sonarqube.ce_task_id``) without holding a worker
slot, then reads SonarQube's own gate. The verdict goes to XCom ``gate`` and to the records; a
failed gate fails the task with one line naming every broken threshold.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from operators.ci.records import RecorderFactory, platform_records, task_ref

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.catalog import QualityGate, Service

SEVERITIES = ("critical", "high", "medium", "low")


@dataclass
class GateVerdict:
    """The gate's answer and the reasons for it."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    coverage: float | None = None
    sonarqube: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(
    quality: QualityGate, counts: Mapping[str, int], coverage: float | None
) -> GateVerdict:
    """Compare findings per severity and coverage with the service's thresholds."""
    verdict = GateVerdict(
        passed=True, counts={s: int(counts.get(s, 0)) for s in SEVERITIES}, coverage=coverage
    )
    for severity in SEVERITIES:
        limit = quality.max_findings.get(severity)
        found = verdict.counts[severity]
        if limit is not None and found > limit:
            verdict.reasons.append(f"{severity} findings {found} > max {limit}")
    if quality.min_coverage is not None:
        if coverage is None:
            verdict.notes.append(
                f"coverage not measured in this run; min_coverage {quality.min_coverage}% not checked"
            )
        elif coverage < quality.min_coverage:
            verdict.reasons.append(f"coverage {coverage:.2f}% < min {quality.min_coverage}%")
    verdict.passed = not verdict.reasons
    return verdict


class QualityGateOperator(BaseOperator):
    """Judge a scan against the service's quality thresholds (and SonarQube's gate if configured).

    :param service: catalog name of the service. (templated)
    :param git_ref: the ref that was scanned, for the records. (templated)
    :param scan_task_id: task id of the scan step whose XCom ``findings`` is judged.
    :param coverage_task_id: task id of a test step whose XCom ``coverage`` is judged; None when
        the run measured no coverage.
    :param digest: image digest the verdict belongs to, for the records. (templated)
    :param deferrable: wait for SonarQube in the triggerer; from ``[operators] default_deferrable``.
    :param poll_interval: seconds between looks at the SonarQube analysis.
    :param sonarqube_timeout_minutes: how long to wait for the SonarQube analysis.
    :param recorder_factory: opens the records store; default the platform records.
    """

    template_fields: Sequence[str] = ("service", "git_ref", "digest")

    def __init__(
        self,
        *,
        service: str,
        git_ref: str,
        scan_task_id: str,
        coverage_task_id: str | None = None,
        digest: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        sonarqube_timeout_minutes: float = 30.0,
        recorder_factory: RecorderFactory | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.git_ref = git_ref
        self.scan_task_id = scan_task_id
        self.coverage_task_id = coverage_task_id
        self.digest = digest
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.sonarqube_timeout_minutes = sonarqube_timeout_minutes
        self.recorder_factory = recorder_factory

    def _service(self) -> Service:
        from include.catalog import load_catalog

        try:
            return load_catalog().service(str(self.service))
        except KeyError as err:
            raise AirflowFailException(f"refused: {err.args[0]}") from None

    def _inputs(self, context: Context) -> tuple[dict[str, int], float | None, dict[str, Any]]:
        ti = context["ti"]
        findings = ti.xcom_pull(task_ids=self.scan_task_id, key="findings")
        if not isinstance(findings, dict) or not isinstance(findings.get("counts"), dict):
            raise AirflowFailException(
                f"no findings from task {self.scan_task_id}: the scan reported nothing to judge"
            )
        coverage = None
        if self.coverage_task_id:
            measured = ti.xcom_pull(task_ids=self.coverage_task_id, key="coverage")
            if isinstance(measured, dict) and measured.get("percent") is not None:
                coverage = float(measured["percent"])
        sonar = ti.xcom_pull(task_ids=self.scan_task_id, key="sonarqube") or {}
        return dict(findings["counts"]), coverage, sonar if isinstance(sonar, dict) else {}

    def execute(self, context: Context) -> dict[str, Any]:
        service = self._service()
        counts, coverage, sonar = self._inputs(context)
        verdict = evaluate(service.quality, counts, coverage)
        if service.sonarqube is None:
            return self._conclude(context, service, verdict)
        task_id = sonar.get("ce_task_id")
        if not task_id:
            verdict.reasons.append("the scan reported no SonarQube task id (result kind sonarqube)")
            verdict.passed = False
            return self._conclude(context, service, verdict)
        deadline = time.time() + self.sonarqube_timeout_minutes * 60
        self.log.info(
            "waiting for SonarQube analysis service=%s task=%s project=%s",
            service.name,
            task_id,
            service.sonarqube.project_key,
        )
        if self.deferrable:
            from operators.ci.sonarqube import SonarQubeGateTrigger

            self.defer(
                trigger=SonarQubeGateTrigger(
                    conn_id=service.sonarqube.conn_id,
                    ce_task_id=str(task_id),
                    poll_interval=self.poll_interval,
                    deadline=deadline,
                ),
                method_name="execute_complete",
            )
        return self._judge_sonarqube(
            context, service, self._wait_here(service, str(task_id), deadline)
        )

    def _wait_here(self, service: Service, task_id: str, deadline: float) -> dict[str, Any]:
        from operators.ci.sonarqube import SonarQubeError, SonarQubeHook, gate_event, poll_once

        assert service.sonarqube is not None
        try:
            client = SonarQubeHook(service.sonarqube.conn_id).get_conn()
            while True:
                event = poll_once(client, task_id)
                if event is not None:
                    return event
                if time.time() > deadline:
                    return gate_event(
                        "timeout", f"SonarQube task {task_id} did not finish in time", None, None
                    )
                time.sleep(self.poll_interval)
        except SonarQubeError as err:
            return gate_event("error", f"cannot read SonarQube: {err}", None, None)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        return self._judge_sonarqube(context, self._service(), event)

    def _judge_sonarqube(
        self, context: Context, service: Service, event: dict[str, Any]
    ) -> dict[str, Any]:
        if event.get("status") in ("error", "timeout"):
            raise AirflowException(str(event.get("message")))
        counts, coverage, _ = self._inputs(context)
        verdict = evaluate(service.quality, counts, coverage)
        gate = (event.get("details") or {}).get("gate") or {}
        verdict.sonarqube = str(gate.get("status")) if gate else None
        if event.get("status") != "success":
            verdict.reasons.append(str(event.get("message")))
        elif verdict.sonarqube == "ERROR":
            failed = [
                f"{c.get('metricKey')} {c.get('actualValue')} (limit {c.get('errorThreshold')})"
                for c in gate.get("conditions") or []
                if c.get("status") == "ERROR"
            ]
            verdict.reasons.append(
                "SonarQube gate ERROR" + (f": {', '.join(failed)}" if failed else "")
            )
        elif verdict.sonarqube == "WARN":
            verdict.notes.append("SonarQube gate WARN")
        verdict.passed = not verdict.reasons
        return self._conclude(context, service, verdict)

    def _conclude(self, context: Context, service: Service, verdict: GateVerdict) -> dict[str, Any]:
        for note in verdict.notes:
            self.log.warning("quality gate service=%s: %s", service.name, note)
        self.log.info(
            "quality gate service=%s ref=%s passed=%s counts=%s coverage=%s sonarqube=%s",
            service.name,
            self.git_ref,
            verdict.passed,
            verdict.counts,
            verdict.coverage,
            verdict.sonarqube,
        )
        factory = self.recorder_factory or platform_records
        findings = context["ti"].xcom_pull(task_ids=self.scan_task_id, key="findings") or {}
        names = sorted((findings.get("by_tool") or {}) if isinstance(findings, dict) else {})
        tools = ",".join([*names, *(["sonarqube"] if verdict.sonarqube else [])])[:50] or None
        commit = context["ti"].xcom_pull(task_ids=self.scan_task_id, key="commit")
        with factory() as records:
            records.record_quality_report(
                task_ref(context),
                service=service.name,
                gate_passed=verdict.passed,
                findings=verdict.counts,
                coverage=verdict.coverage,
                commit=commit if isinstance(commit, str) else None,
                digest=self.digest or None,
                tool=tools,
                detail={
                    "git_ref": self.git_ref,
                    "reasons": verdict.reasons,
                    "notes": verdict.notes,
                },
            )
        context["ti"].xcom_push(key="gate", value=verdict.to_dict())
        if not verdict.passed:
            raise AirflowFailException("quality gate failed: " + "; ".join(verdict.reasons))
        return verdict.to_dict()
