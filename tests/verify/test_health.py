"""HTTP health checks against a real site backend on loopback."""

from __future__ import annotations

import socket

import pytest

from include.catalog import HealthCheck
from operators.verify.health import check_health, judge_health_answer
from sandbox.gateway.testing import run_backend

pytestmark = [pytest.mark.timeout(30)]

HOST = "hello-api.prod"


def test_judge_health_answer() -> None:
    health = HealthCheck(path="/healthz", expect_status=200, expect_body='"status":"UP"')
    assert judge_health_answer(200, '{"status":"UP"}', health) is None
    assert judge_health_answer(503, '{"status":"UP"}', health) == "status 503, expected 200"
    assert "does not contain" in (judge_health_answer(200, '{"status":"DOWN"}', health) or "")
    assert judge_health_answer(204, "", HealthCheck(path="/", expect_status=204)) is None


@pytest.mark.integration
def test_healthy_on_first_attempt_with_the_service_host() -> None:
    with run_backend("site-a") as backend:
        result = check_health(backend.url, HOST, HealthCheck(path="/healthz", expect_body="ok"))
    assert result.ok and len(result.attempts) == 1
    assert result.attempts[0].status == 200
    assert backend.hosts_seen == {HOST: 1}


@pytest.mark.integration
def test_retries_until_healthy() -> None:
    waits: list[float] = []
    with run_backend("site-a", health_fail_first=2) as backend:
        result = check_health(
            backend.url,
            HOST,
            HealthCheck(path="/healthz", retries=5),
            interval_seconds=0.5,
            sleep=waits.append,
        )
    assert result.ok
    assert [a.status for a in result.attempts] == [503, 503, 200]
    assert waits == [0.5, 0.5]


@pytest.mark.integration
def test_body_mismatch_fails_after_every_retry() -> None:
    with run_backend("site-a", health_body="degraded") as backend:
        result = check_health(
            backend.url,
            HOST,
            HealthCheck(path="/healthz", expect_body="ok", retries=2),
            sleep=lambda _: None,
        )
    assert not result.ok
    assert len(result.attempts) == 3
    assert "body does not contain 'ok'" in result.reason
    assert result.to_dict()["ok"] is False


@pytest.mark.integration
def test_slow_answers_time_out_and_are_retried() -> None:
    with run_backend("site-a", delay_seconds=0.6) as backend:
        result = check_health(
            backend.url,
            HOST,
            HealthCheck(path="/healthz", timeout_seconds=0.15, retries=1),
            sleep=lambda _: None,
        )
    assert not result.ok and len(result.attempts) == 2
    assert result.reason == "no answer within 0.15 s"
    assert all(a.elapsed_seconds < 0.5 for a in result.attempts)


@pytest.mark.integration
def test_refused_connection_is_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = check_health(
        f"http://127.0.0.1:{port}",
        HOST,
        HealthCheck(path="/healthz", retries=0),
        sleep=lambda _: None,
    )
    assert not result.ok and result.reason.startswith("ConnectionError")
