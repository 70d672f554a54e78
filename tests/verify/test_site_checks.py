"""Verification against real servers: error rates through the stand-in gateway, and the operators."""

from __future__ import annotations

import json

import pytest

from sandbox.gateway.load import LoadGenerator
from tests.gateway.fixtures import SERVICE, SERVICE_HOST

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _load(gateway, requests_count: int, rate: float = 400.0):  # type: ignore[no-untyped-def]
    generator = LoadGenerator(
        gateway.proxy, SERVICE_HOST, rate_per_s=rate, max_requests=requests_count
    ).start()
    assert generator.join(30)
    return generator.summary()


def test_a_backend_failing_30_percent_is_caught_at_a_5_percent_step(
    driver, gateway, backends
) -> None:  # type: ignore[no-untyped-def]
    from operators.verify.error_rate import judge_error_rate, window_counts

    backends["site-b"].error_ratio = 0.3
    driver.set_weights(SERVICE, {"site-a": 95, "site-b": 5})
    before = driver.answer_counts(SERVICE)
    summary = _load(gateway, 400)
    after = driver.answer_counts(SERVICE)
    window = window_counts(before, after)
    assert window["site-b"].total == 20 and window["site-b"].errors == 6
    assert window["site-a"].total == 380 and window["site-a"].errors == 0
    assert summary.failed == 6 and summary.failed_by_site == {"site-b": 6}
    bad = judge_error_rate(window, "site-b", max_error_rate=0.02)
    good = judge_error_rate(window, "site-a", max_error_rate=0.02)
    assert not bad.ok and bad.conclusive
    assert good.ok and good.conclusive


def test_error_rate_operator_defers_then_fails_the_bad_site(driver, gateway, backends) -> None:  # type: ignore[no-untyped-def]
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    from airflow.sdk.exceptions import AirflowException, TaskDeferred

    from operators.verify.checks import ErrorRateCheckOperator

    backends["site-b"].error_ratio = 0.3
    driver.set_weights(SERVICE, {"site-a": 75, "site-b": 25})
    check_b = ErrorRateCheckOperator(
        task_id="verify_error_rate", service=SERVICE, site="site-b", deferrable=True
    )
    with pytest.raises(TaskDeferred) as deferred:
        check_b.execute(context={})
    assert isinstance(deferred.value.trigger, DateTimeTrigger)
    assert deferred.value.method_name == "execute_complete"
    kwargs = json.loads(json.dumps(deferred.value.kwargs))
    _load(gateway, 200)
    with pytest.raises(AirflowException, match="site site-b: 15/50 errors"):
        check_b.execute_complete({}, event=None, **kwargs)
    check_a = ErrorRateCheckOperator(
        task_id="verify_error_rate_a", service=SERVICE, site="site-a", deferrable=True
    )
    verdict = check_a.execute_complete({}, event=None, **kwargs)
    assert verdict["ok"] is True and verdict["total"] == 150


def test_error_rate_operator_waits_in_place_when_not_deferrable(driver, gateway, backends) -> None:  # type: ignore[no-untyped-def]
    from operators.verify.checks import ErrorRateCheckOperator

    generator = LoadGenerator(gateway.proxy, SERVICE_HOST, rate_per_s=200, max_requests=400).start()
    try:
        check = ErrorRateCheckOperator(
            task_id="verify_error_rate",
            service=SERVICE,
            site="site-b",
            window_seconds=0.5,
            deferrable=False,
        )
        verdict = check.execute(context={})
    finally:
        generator.stop()
    assert verdict["ok"] and verdict["conclusive"] and verdict["total"] > 10


def test_error_rate_operator_can_fail_on_no_traffic(driver) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.exceptions import AirflowException

    from operators.verify.checks import ErrorRateCheckOperator

    check = ErrorRateCheckOperator(
        task_id="verify_error_rate",
        service=SERVICE,
        site="site-b",
        window_seconds=0.1,
        fail_when_inconclusive=True,
        deferrable=False,
    )
    with pytest.raises(AirflowException, match="answered no requests"):
        check.execute(context={})


def test_health_operator_passes_and_fails_with_the_reason(connections, backends) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.exceptions import AirflowException

    from operators.verify.checks import SiteHealthCheckOperator

    result = SiteHealthCheckOperator(
        task_id="verify_health", service=SERVICE, site="site-b"
    ).execute(context={})
    assert result["ok"] and backends["site-b"].hosts_seen == {SERVICE_HOST: 1}
    backends["site-a"].health_body = "booting"
    failing = SiteHealthCheckOperator(
        task_id="verify_health", service=SERVICE, site="site-a", interval_seconds=0.01
    )
    with pytest.raises(AirflowException, match="unhealthy at site site-a after 6 attempt"):
        failing.execute(context={})
