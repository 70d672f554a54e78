"""The bounded load generator, through the stand-in gateway."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import requests

from sandbox.gateway.load import LoadGenerator
from tests.gateway.fixtures import SERVICE_HOST

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def routed(gateway, backends):  # type: ignore[no-untyped-def]
    headers = {"X-API-KEY": gateway.admin_key}
    nodes = [
        {"host": "127.0.0.1", "port": backends[s].port, "weight": w}
        for s, w in (("site-a", 25), ("site-b", 75))
    ]
    requests.put(
        gateway.admin + "/apisix/admin/upstreams/web",
        json={"nodes": nodes, "pass_host": "rewrite", "upstream_host": SERVICE_HOST},
        headers=headers,
        timeout=5,
    ).raise_for_status()
    requests.put(
        gateway.admin + "/apisix/admin/routes/web",
        json={"host": SERVICE_HOST, "uri": "/*", "upstream_id": "web"},
        headers=headers,
        timeout=5,
    ).raise_for_status()
    return gateway


def test_sends_exactly_max_requests_at_the_rate(routed, backends) -> None:  # type: ignore[no-untyped-def]
    backends["site-b"].error_ratio = 0.2
    started = time.monotonic()
    generator = LoadGenerator(routed.proxy, SERVICE_HOST, rate_per_s=200, max_requests=80).start()
    assert generator.join(20)
    elapsed = time.monotonic() - started
    summary = generator.summary()
    assert summary.sent == 80 and summary.ok + summary.failed == 80
    assert summary.by_site == {"site-a": 20, "site-b": 60}
    assert summary.by_status == {"200": 68, "500": 12}
    assert summary.failed_by_site == {"site-b": 12}
    assert elapsed >= 79 / 200
    assert summary.first_failures[0]["status"] == "500"


def test_stop_ends_early_and_counts_no_answer(routed, backends) -> None:  # type: ignore[no-untyped-def]
    with LoadGenerator(routed.proxy, SERVICE_HOST, rate_per_s=50, max_requests=10_000) as generator:
        time.sleep(0.3)
    summary = generator.summary()
    assert 5 <= summary.sent < 100
    assert summary.failed == 0
    dead = LoadGenerator("http://127.0.0.1:1", SERVICE_HOST, rate_per_s=100, max_requests=3).start()
    assert dead.join(10)
    assert dead.summary().by_status == {"no-answer": 3}
    assert dead.summary().errors == {"ConnectionError": 3}


@pytest.mark.timeout(30)
def test_command_line_prints_a_summary(routed) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox.gateway.load",
            "--proxy",
            routed.proxy,
            "--host",
            SERVICE_HOST,
            "--rate",
            "100",
            "--max-requests",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["sent"], summary["ok"], summary["failed"]) == (8, 8, 0)
    assert summary["by_site"] == {"site-a": 2, "site-b": 6}
