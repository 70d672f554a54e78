"""The APISIX driver against the stand-in gateway: weights, set-up, retries and clear errors."""

from __future__ import annotations

import time

import pytest
import requests

from tests.gateway.fixtures import SERVICE, SERVICE_HOST, fast_hook

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _admin(gateway, method: str, path: str, body=None):  # type: ignore[no-untyped-def]
    return requests.request(
        method,
        gateway.admin + path,
        json=body,
        headers={"X-API-KEY": gateway.admin_key},
        timeout=5,
    )


def _patches(gateway) -> list[dict]:  # type: ignore[no-untyped-def]
    return [c for c in gateway.admin_requests() if c["method"] == "PATCH"]


def test_ensure_service_creates_upstream_and_route(driver, gateway, backends) -> None:  # type: ignore[no-untyped-def]
    upstream = _admin(gateway, "GET", f"/apisix/admin/upstreams/{SERVICE}").json()["value"]
    assert upstream["pass_host"] == "rewrite"
    assert upstream["upstream_host"] == SERVICE_HOST
    assert upstream["type"] == "roundrobin"
    addresses = {f"{n['host']}:{n['port']}": n["weight"] for n in upstream["nodes"]}
    assert addresses == {
        f"127.0.0.1:{backends['site-a'].port}": 50,
        f"127.0.0.1:{backends['site-b'].port}": 50,
    }
    route = _admin(gateway, "GET", f"/apisix/admin/routes/{SERVICE}").json()["value"]
    assert route["host"] == SERVICE_HOST
    assert route["upstream_id"] == SERVICE
    assert route["uri"] == "/*"
    assert driver.get_weights(SERVICE) == {"site-a": 50, "site-b": 50}


def test_ensure_service_is_idempotent_and_keeps_weights(driver, gateway, catalog) -> None:  # type: ignore[no-untyped-def]
    driver.set_weights(SERVICE, {"site-a": 10, "site-b": 90})
    before = len(gateway.admin_requests())
    assert driver.ensure_service(catalog.service(SERVICE)) is False
    calls = gateway.admin_requests()[before:]
    assert [c["method"] for c in calls] == ["GET", "GET"]
    assert driver.get_weights(SERVICE) == {"site-a": 10, "site-b": 90}


def test_ensure_service_repairs_a_drifted_route_and_upstream(driver, gateway, catalog) -> None:  # type: ignore[no-untyped-def]
    _admin(gateway, "PATCH", f"/apisix/admin/routes/{SERVICE}", {"host": "wrong.example"})
    _admin(gateway, "PATCH", f"/apisix/admin/upstreams/{SERVICE}", {"pass_host": "pass"})
    assert driver.ensure_service(catalog.service(SERVICE)) is True
    route = _admin(gateway, "GET", f"/apisix/admin/routes/{SERVICE}").json()["value"]
    upstream = _admin(gateway, "GET", f"/apisix/admin/upstreams/{SERVICE}").json()["value"]
    assert route["host"] == SERVICE_HOST
    assert upstream["pass_host"] == "rewrite"
    assert driver.get_weights(SERVICE) == {"site-a": 50, "site-b": 50}


def test_set_weights_is_one_patch_with_every_site(driver, gateway, backends) -> None:  # type: ignore[no-untyped-def]
    before = len(_patches(gateway))
    assert driver.set_weights(SERVICE, {"site-a": 25, "site-b": 75}) == {"site-a": 25, "site-b": 75}
    patches = _patches(gateway)[before:]
    assert len(patches) == 1
    assert patches[0]["path"] == f"/apisix/admin/upstreams/{SERVICE}"
    assert driver.get_weights(SERVICE) == {"site-a": 25, "site-b": 75}
    nodes = _admin(gateway, "GET", f"/apisix/admin/upstreams/{SERVICE}").json()["value"]["nodes"]
    assert sorted((n["port"], n["weight"]) for n in nodes) == sorted(
        [(backends["site-a"].port, 25), (backends["site-b"].port, 75)]
    )


def test_set_weights_keeps_the_object_form_of_nodes(driver, gateway, backends) -> None:  # type: ignore[no-untyped-def]
    a = f"127.0.0.1:{backends['site-a'].port}"
    b = f"127.0.0.1:{backends['site-b'].port}"
    _admin(gateway, "PATCH", f"/apisix/admin/upstreams/{SERVICE}/nodes", {a: 50, b: 50})
    driver.set_weights(SERVICE, {"site-a": 0, "site-b": 100})
    nodes = _admin(gateway, "GET", f"/apisix/admin/upstreams/{SERVICE}").json()["value"]["nodes"]
    assert nodes == {a: 0, b: 100}


def test_set_weights_refuses_bad_weights_without_calling_the_gateway(driver, gateway) -> None:  # type: ignore[no-untyped-def]
    from operators.gateway.base import GatewayConfigError

    before = len(gateway.admin_requests())
    with pytest.raises(GatewayConfigError, match="every site at 0"):
        driver.set_weights(SERVICE, {"site-a": 0, "site-b": 0})
    with pytest.raises(GatewayConfigError, match="missing=\\['site-b'\\]"):
        driver.set_weights(SERVICE, {"site-a": 100})
    with pytest.raises(GatewayConfigError, match="whole number"):
        driver.set_weights(SERVICE, {"site-a": -1, "site-b": 101})
    assert len(gateway.admin_requests()) == before


def test_unknown_service_names_the_path(driver) -> None:  # type: ignore[no-untyped-def]
    from operators.gateway.base import GatewayConfigError

    with pytest.raises(GatewayConfigError) as caught:
        driver.get_weights("no-such-service")
    message = str(caught.value)
    assert "/apisix/admin/upstreams/no-such-service" in message
    assert "service=no-such-service" in message
    assert caught.value.status == 404


def test_wrong_admin_key_is_a_clear_error_without_the_key(
    connections, catalog, gateway, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import json

    from operators.gateway import gateway_driver
    from operators.gateway.base import GatewayError

    conn = gateway.connection()
    conn["password"] = "not-the-key-abcdef"
    monkeypatch.setenv("AIRFLOW_CONN_GATEWAY_ADMIN", json.dumps(conn))
    wrong = gateway_driver(catalog, hook=fast_hook())
    with pytest.raises(GatewayError) as caught:
        wrong.get_weights(SERVICE)
    message = str(caught.value)
    assert "HTTP 401" in message and "gateway_admin" in message
    assert "not-the-key-abcdef" not in message
    assert caught.value.status == 401


def test_admin_api_down_for_a_while_is_retried(driver, gateway) -> None:  # type: ignore[no-untyped-def]
    gateway.set_fault("503", seconds=0.6)
    started = time.monotonic()
    assert driver.set_weights(SERVICE, {"site-a": 30, "site-b": 70}) == {"site-a": 30, "site-b": 70}
    assert time.monotonic() - started >= 0.5
    faulted = [c for c in gateway.admin_requests() if c.get("fault")]
    assert len(faulted) >= 2


def test_dropped_connections_are_retried(driver, gateway) -> None:  # type: ignore[no-untyped-def]
    gateway.set_fault("drop", requests_count=3)
    assert driver.set_weights(SERVICE, {"site-a": 40, "site-b": 60}) == {"site-a": 40, "site-b": 60}
    assert len([c for c in gateway.admin_requests() if c.get("fault") == "drop"]) == 3


def test_429_waits_as_long_as_retry_after_asks(driver, gateway) -> None:  # type: ignore[no-untyped-def]
    gateway.set_fault("429", requests_count=1, retry_after=0.7)
    started = time.monotonic()
    assert driver.get_weights(SERVICE) == {"site-a": 50, "site-b": 50}
    assert time.monotonic() - started >= 0.7


def test_admin_api_down_beyond_the_budget_fails_clearly_and_changes_nothing(
    connections, catalog, gateway, driver
) -> None:  # type: ignore[no-untyped-def]
    from operators.gateway import gateway_driver
    from operators.gateway.base import GatewayError

    impatient = gateway_driver(catalog, hook=fast_hook(retry_budget_seconds=0.5))
    gateway.set_fault("503", seconds=30)
    with pytest.raises(GatewayError) as caught:
        impatient.set_weights(SERVICE, {"site-a": 0, "site-b": 100})
    message = str(caught.value)
    assert f"/apisix/admin/upstreams/{SERVICE}" in message
    assert f"service={SERVICE}" in message
    assert "HTTP 503" in message
    gateway.clear_fault()
    assert driver.get_weights(SERVICE) == {"site-a": 50, "site-b": 50}


def test_a_patch_whose_answer_is_lost_is_retried_to_the_same_end(
    connections, catalog, driver, gateway
) -> None:  # type: ignore[no-untyped-def]
    from operators.gateway import gateway_driver

    quick = gateway_driver(catalog, hook=fast_hook(timeout_seconds=0.3))
    gateway.set_fault("delay", requests_count=1, delay_seconds=1.0, methods=["PATCH"])
    assert quick.set_weights(SERVICE, {"site-a": 5, "site-b": 95}) == {"site-a": 5, "site-b": 95}
    time.sleep(1.0)
    patches = _patches(gateway)
    assert [(p.get("fault"), p["status"]) for p in patches] == [("delay", 200), (None, 200)]
    assert driver.get_weights(SERVICE) == {"site-a": 5, "site-b": 95}


def test_answer_counts_per_site_from_the_metrics(driver, gateway, backends) -> None:  # type: ignore[no-untyped-def]
    backends["site-b"].error_ratio = 0.5
    with requests.Session() as session:
        for _ in range(40):
            session.get(gateway.proxy + "/hello", headers={"Host": SERVICE_HOST}, timeout=5)
    counts = driver.answer_counts(SERVICE)
    assert counts["site-a"]["2xx"] == 20
    assert counts["site-b"]["2xx"] == 10
    assert counts["site-b"]["5xx"] == 10
    assert counts["site-a"]["5xx"] == 0


def test_sites_on_one_ip_need_the_upstream_addr_label(monkeypatch, catalog) -> None:  # type: ignore[no-untyped-def]
    import json

    from operators.gateway import gateway_driver
    from operators.gateway.base import GatewayConfigError
    from sandbox.gateway.testing import run_backend, run_gateway

    with (
        run_gateway(upstream_addr_label=False) as stock,
        run_backend("site-a") as a,
        run_backend("site-b") as b,
    ):
        monkeypatch.setenv("AIRFLOW_CONN_GATEWAY_ADMIN", json.dumps(stock.connection()))
        monkeypatch.setenv("AIRFLOW_CONN_INGRESS_SITE_A", json.dumps(a.connection()))
        monkeypatch.setenv("AIRFLOW_CONN_INGRESS_SITE_B", json.dumps(b.connection()))
        shared = gateway_driver(catalog, hook=fast_hook())
        shared.ensure_service(catalog.service(SERVICE))
        requests.get(stock.proxy + "/", headers={"Host": SERVICE_HOST}, timeout=5)
        with pytest.raises(GatewayConfigError, match="upstream_addr"):
            shared.answer_counts(SERVICE)


def test_sites_on_their_own_ips_are_told_apart_by_the_node_label(monkeypatch, catalog) -> None:  # type: ignore[no-untyped-def]
    import json

    from operators.gateway import gateway_driver
    from sandbox.gateway.testing import run_backend, run_gateway

    with (
        run_gateway(upstream_addr_label=False) as stock,
        run_backend("site-a", host="127.0.0.2") as a,
        run_backend("site-b", host="127.0.0.3") as b,
    ):
        monkeypatch.setenv("AIRFLOW_CONN_GATEWAY_ADMIN", json.dumps(stock.connection()))
        monkeypatch.setenv("AIRFLOW_CONN_INGRESS_SITE_A", json.dumps(a.connection()))
        monkeypatch.setenv("AIRFLOW_CONN_INGRESS_SITE_B", json.dumps(b.connection()))
        split = gateway_driver(catalog, hook=fast_hook())
        split.ensure_service(catalog.service(SERVICE), {"site-a": 25, "site-b": 75})
        with requests.Session() as session:
            for _ in range(8):
                session.get(stock.proxy + "/", headers={"Host": SERVICE_HOST}, timeout=5)
        counts = split.answer_counts(SERVICE)
        assert (counts["site-a"]["2xx"], counts["site-b"]["2xx"]) == (2, 6)


def test_missing_metrics_url_is_a_config_error(monkeypatch, connections, catalog, gateway) -> None:  # type: ignore[no-untyped-def]
    import json

    from operators.gateway import gateway_driver
    from operators.gateway.base import GatewayConfigError

    conn = gateway.connection()
    conn["extra"] = {}
    monkeypatch.setenv("AIRFLOW_CONN_GATEWAY_ADMIN", json.dumps(conn))
    with pytest.raises(GatewayConfigError, match="metrics_url"):
        gateway_driver(catalog, hook=fast_hook()).answer_counts(SERVICE)
