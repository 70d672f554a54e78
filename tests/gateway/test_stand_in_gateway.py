"""The stand-in gateway itself: admin API shapes, weighted proxying, counting, faults, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
import requests

from sandbox.gateway.admin import Node, merge
from sandbox.gateway.server import SmoothWeightedRoundRobin
from tests.gateway.fixtures import SERVICE_HOST

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _admin(gateway, method: str, path: str, body=None, key: str | None = "default"):  # type: ignore[no-untyped-def]
    headers = {"X-API-KEY": gateway.admin_key if key == "default" else key} if key else {}
    return requests.request(method, gateway.admin + path, json=body, headers=headers, timeout=5)


def _serve(gateway, backends, weights: dict[str, int], **upstream) -> None:  # type: ignore[no-untyped-def]
    nodes = [
        {"host": "127.0.0.1", "port": backends[site].port, "weight": weight}
        for site, weight in weights.items()
    ]
    body = {"nodes": nodes, "pass_host": "rewrite", "upstream_host": SERVICE_HOST, **upstream}
    assert _admin(gateway, "PUT", "/apisix/admin/upstreams/web", body).status_code in (200, 201)
    route = {"host": SERVICE_HOST, "uri": "/*", "upstream_id": "web"}
    assert _admin(gateway, "PUT", "/apisix/admin/routes/web", route).status_code in (200, 201)


def _sites(gateway, count: int, host: str = SERVICE_HOST) -> Counter[str]:  # type: ignore[no-untyped-def]
    seen: Counter[str] = Counter()
    with requests.Session() as session:
        for _ in range(count):
            answer = session.get(gateway.proxy + "/greet", headers={"Host": host}, timeout=5)
            seen[answer.headers.get("X-Site", str(answer.status_code))] += 1
    return seen


def test_smooth_weighted_round_robin_interleaves() -> None:
    balancer = SmoothWeightedRoundRobin([Node("a", 1, 5), Node("b", 1, 1), Node("c", 1, 1)])
    picks = [balancer.pick().host for _ in range(7)]  # type: ignore[union-attr]
    assert picks == ["a", "a", "b", "a", "c", "a", "a"]
    assert SmoothWeightedRoundRobin([Node("a", 1, 0)]).pick() is None


def test_merge_follows_apisix_patch_rules() -> None:
    origin = {"nodes": {"a:1": 1, "b:1": 1}, "timeout": {"connect": 1, "read": 2}, "labels": ["x"]}
    merge(origin, {"nodes": {"b:1": 5}, "timeout": {"read": 9}, "labels": ["y"], "desc": None})
    assert origin == {
        "nodes": {"a:1": 1, "b:1": 5},
        "timeout": {"connect": 1, "read": 9},
        "labels": ["y"],
    }
    listed = {
        "nodes": [{"host": "a", "port": 1, "weight": 1}, {"host": "b", "port": 1, "weight": 1}]
    }
    merge(listed, {"nodes": [{"host": "b", "port": 1, "weight": 3}]})
    assert listed == {"nodes": [{"host": "b", "port": 1, "weight": 3}]}


def test_admin_api_shapes(gateway) -> None:  # type: ignore[no-untyped-def]
    assert _admin(gateway, "GET", "/apisix/admin/upstreams/u1", key=None).json() == {
        "error_msg": "failed to check token"
    }
    missing = _admin(gateway, "GET", "/apisix/admin/upstreams/u1")
    assert (missing.status_code, missing.json()) == (404, {"message": "Key not found"})
    created = _admin(gateway, "PUT", "/apisix/admin/upstreams/u1", {"nodes": {"127.0.0.1:9": 1}})
    assert created.status_code == 201
    body = created.json()
    assert body["key"] == "/apisix/upstreams/u1"
    assert body["value"]["id"] == "u1" and body["value"]["pass_host"] == "pass"
    assert {"createdIndex", "modifiedIndex"} <= set(body)
    again = _admin(gateway, "PUT", "/apisix/admin/upstreams/u1", {"nodes": {"127.0.0.1:9": 2}})
    assert again.status_code == 200
    assert again.json()["modifiedIndex"] > body["modifiedIndex"]
    bad = _admin(gateway, "PUT", "/apisix/admin/upstreams/u2", {"nodes": {"127.0.0.1:9": -1}})
    assert bad.status_code == 400 and "invalid configuration" in bad.json()["error_msg"]
    rewrite = _admin(
        gateway, "PUT", "/apisix/admin/upstreams/u2", {"nodes": {}, "pass_host": "rewrite"}
    )
    assert rewrite.status_code == 400
    orphan = _admin(gateway, "PUT", "/apisix/admin/routes/r1", {"uri": "/*", "upstream_id": "nope"})
    assert orphan.status_code == 400 and "upstream id [nope]" in orphan.json()["error_msg"]
    assert (
        _admin(
            gateway, "PUT", "/apisix/admin/routes/r1", {"uri": "/*", "upstream_id": "u1"}
        ).status_code
        == 201
    )
    in_use = _admin(gateway, "DELETE", "/apisix/admin/upstreams/u1")
    assert in_use.status_code == 400 and "route [r1]" in in_use.json()["error_msg"]
    assert _admin(gateway, "DELETE", "/apisix/admin/routes/r1").json() == {
        "deleted": "1",
        "key": "/apisix/routes/r1",
    }
    listed = _admin(gateway, "GET", "/apisix/admin/upstreams").json()
    assert listed["total"] == 1 and listed["list"][0]["value"]["id"] == "u1"
    assert _admin(gateway, "DELETE", "/apisix/admin/upstreams/u1").status_code == 200


@pytest.mark.parametrize(
    ("weights", "expected"), [((0, 100), (0, 100)), ((25, 75), (25, 75)), ((5, 95), (5, 95))]
)
def test_traffic_splits_by_weight(gateway, backends, weights, expected) -> None:  # type: ignore[no-untyped-def]
    _serve(gateway, backends, {"site-a": weights[0], "site-b": weights[1]})
    seen = _sites(gateway, 100)
    assert (seen["site-a"], seen["site-b"]) == expected
    assert backends["site-b"].hosts_seen[SERVICE_HOST] == expected[1]


def test_weight_change_takes_effect_on_the_next_request(gateway, backends) -> None:  # type: ignore[no-untyped-def]
    _serve(gateway, backends, {"site-a": 50, "site-b": 50})
    assert _sites(gateway, 10) == Counter({"site-a": 5, "site-b": 5})
    patch = {"nodes": [{"host": "127.0.0.1", "port": backends["site-b"].port, "weight": 1}]}
    assert _admin(gateway, "PATCH", "/apisix/admin/upstreams/web", patch).status_code == 200
    assert _sites(gateway, 10) == Counter({"site-b": 10})


def test_pass_host_modes(gateway, backends) -> None:  # type: ignore[no-untyped-def]
    _serve(gateway, backends, {"site-a": 1, "site-b": 0}, pass_host="pass")
    _sites(gateway, 1)
    assert backends["site-a"].hosts_seen[SERVICE_HOST] == 1
    _serve(gateway, backends, {"site-a": 1, "site-b": 0}, pass_host="node")
    _sites(gateway, 1)
    assert backends["site-a"].hosts_seen[f"127.0.0.1:{backends['site-a'].port}"] == 1


def test_unmatched_host_is_404(gateway, backends) -> None:  # type: ignore[no-untyped-def]
    _serve(gateway, backends, {"site-a": 1, "site-b": 1})
    answer = requests.get(gateway.proxy + "/", headers={"Host": "other.example"}, timeout=5)
    assert (answer.status_code, answer.json()) == (404, {"error_msg": "404 Route Not Found"})


def test_dead_node_answers_502_and_is_counted(gateway, backends) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    body = {
        "nodes": [{"host": "127.0.0.1", "port": dead_port, "weight": 1}],
        "pass_host": "rewrite",
        "upstream_host": SERVICE_HOST,
    }
    _admin(gateway, "PUT", "/apisix/admin/upstreams/web", body)
    _admin(
        gateway,
        "PUT",
        "/apisix/admin/routes/web",
        {"host": SERVICE_HOST, "uri": "/*", "upstream_id": "web"},
    )
    assert _sites(gateway, 3) == Counter({"502": 3})
    text = requests.get(gateway.metrics, timeout=5).text
    assert (
        f'apisix_http_status{{code="502",route="web",matched_uri="/*",matched_host="{SERVICE_HOST}",'
        f'service="",consumer="",node="127.0.0.1",upstream_addr="127.0.0.1:{dead_port}"}} 3'
    ) in text


def test_dead_node_fails_over_to_a_live_one_by_default(gateway, backends) -> None:  # type: ignore[no-untyped-def]
    _serve(gateway, backends, {"site-a": 50, "site-b": 50})
    port_b = backends["site-b"].port
    nodes = [
        {"host": "127.0.0.1", "port": backends["site-a"].port, "weight": 50},
        {"host": "127.0.0.1", "port": 1, "weight": 50},
    ]
    _admin(gateway, "PATCH", "/apisix/admin/upstreams/web", {"nodes": nodes})
    assert _sites(gateway, 6) == Counter({"site-a": 6})
    _admin(gateway, "PATCH", "/apisix/admin/upstreams/web", {"retries": 0})
    assert _sites(gateway, 6) == Counter({"site-a": 3, "502": 3})
    assert port_b != 1


def test_counts_per_node_and_status(gateway, backends) -> None:  # type: ignore[no-untyped-def]
    backends["site-b"].error_ratio = 0.3
    _serve(gateway, backends, {"site-a": 50, "site-b": 50})
    _sites(gateway, 200)
    text = requests.get(gateway.metrics, timeout=5).text
    lines = {
        line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("apisix_http_status{")
    }
    port_a, port_b = backends["site-a"].port, backends["site-b"].port
    by_node = Counter()
    for labels, count in lines.items():
        code = labels.split('code="')[1].split('"')[0]
        addr = labels.split('upstream_addr="')[1].split('"')[0]
        by_node[(addr, code)] += count
    assert by_node == Counter(
        {
            (f"127.0.0.1:{port_a}", "200"): 100,
            (f"127.0.0.1:{port_b}", "200"): 70,
            (f"127.0.0.1:{port_b}", "500"): 30,
        }
    )


def test_faults_by_requests_and_seconds(gateway) -> None:  # type: ignore[no-untyped-def]
    gateway.set_fault("503", requests_count=2, retry_after=1)
    first = _admin(gateway, "GET", "/apisix/admin/upstreams")
    assert (first.status_code, first.headers["Retry-After"]) == (503, "1")
    assert _admin(gateway, "GET", "/apisix/admin/upstreams").status_code == 503
    assert _admin(gateway, "GET", "/apisix/admin/upstreams").status_code == 200
    gateway.set_fault("drop", seconds=30)
    with pytest.raises(requests.ConnectionError):
        _admin(gateway, "GET", "/apisix/admin/upstreams")
    gateway.clear_fault()
    assert _admin(gateway, "GET", "/apisix/admin/upstreams").status_code == 200
    bad = requests.put(gateway.admin + "/sandbox/faults", json={"mode": "teapot"}, timeout=5)
    assert bad.status_code == 400


@pytest.mark.timeout(30)
def test_command_line_prints_urls_and_serves() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.gateway",
            "--admin-port",
            "0",
            "--proxy-port",
            "0",
            "--admin-key",
            "k-123456",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        assert set(urls) == {"admin", "proxy", "metrics"}
        denied = requests.get(urls["admin"] + "/apisix/admin/routes", timeout=5)
        assert denied.status_code == 401
        allowed = requests.get(
            urls["admin"] + "/apisix/admin/routes", headers={"X-API-KEY": "k-123456"}, timeout=5
        )
        assert allowed.json() == {"total": 0, "list": []}
        assert "apisix_http_status" in requests.get(urls["metrics"], timeout=5).text
    finally:
        process.terminate()
        assert process.wait(10) == 0
