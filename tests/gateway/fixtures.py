"""Fixtures shared by the gateway and verify tests: the stand-in gateway, two site backends and
the Airflow connections that point at them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from sandbox.gateway.testing import RunningGateway, SiteBackend, run_backend, run_gateway

SERVICE = "hello-api"
SERVICE_HOST = "hello-api.prod"


@pytest.fixture
def gateway() -> Iterator[RunningGateway]:
    with run_gateway() as running:
        yield running


@pytest.fixture
def backends() -> Iterator[dict[str, SiteBackend]]:
    with run_backend("site-a") as site_a, run_backend("site-b") as site_b:
        yield {"site-a": site_a, "site-b": site_b}


@pytest.fixture
def connections(
    monkeypatch: pytest.MonkeyPatch, gateway: RunningGateway, backends: dict[str, SiteBackend]
) -> dict[str, str]:
    """Airflow connections (as environment variables) for the gateway and both sites' ingress."""
    env = gateway.connection_env("gateway_admin", timeout=2.0)
    env["AIRFLOW_CONN_INGRESS_SITE_A"] = json.dumps(backends["site-a"].connection())
    env["AIRFLOW_CONN_INGRESS_SITE_B"] = json.dumps(backends["site-b"].connection())
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def catalog():  # type: ignore[no-untyped-def]
    from include.catalog import load_catalog

    return load_catalog()


def fast_hook(**overrides: float):  # type: ignore[no-untyped-def]
    """A gateway hook with short backoffs so retry tests stay quick."""
    from operators.gateway.hook import GatewayHook

    settings: dict[str, float] = {
        "retries": 6,
        "backoff_seconds": 0.05,
        "max_backoff_seconds": 0.4,
        "retry_budget_seconds": 4.0,
    }
    settings.update(overrides)
    return GatewayHook(
        "gateway_admin",
        retries=int(settings.pop("retries")),
        **settings,
    )


@pytest.fixture
def driver(connections: dict[str, str], catalog):  # type: ignore[no-untyped-def]
    """The APISIX driver for the catalog's sites, with the service set up at the gateway."""
    from operators.gateway import gateway_driver

    built = gateway_driver(catalog, hook=fast_hook())
    built.ensure_service(catalog.service(SERVICE))
    yield built
    built.hook.close()
