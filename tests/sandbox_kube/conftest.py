"""Fixtures for the Kubernetes stand-in tests: running sites and official clients bound to them."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from sandbox.kube.testing import RunningSite, run_site

APP = """
import os, sys, http.server
VERSION = os.environ.get("VERSION", "v0")
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok" if self.path == "/healthz" else VERSION.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("serving", VERSION, flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture(scope="session")
def app_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HTTP service: /healthz says ok, anything else answers $VERSION."""
    path = tmp_path_factory.mktemp("app") / "app.py"
    path.write_text(APP)
    return path


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="module")
def site(images_dir: Path) -> Iterator[RunningSite]:
    with run_site(
        "site-a", images_dir=images_dir, speed=10, namespaces=("prod",), history_size=200
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api_client(site: RunningSite) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(site.kubeconfig_path))
    yield api
    api.close()


@pytest.fixture(scope="module")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="module")
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture(scope="module")
def batch(api_client: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api_client)


def wait_for(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll until `check` returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")


def pod_body(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container = {
        "name": spec.pop("container_name", "base"),
        "image": spec.pop("image", "python:3.11-slim"),
        "command": command,
    }
    container.update(spec.pop("container", {}))
    return {
        "metadata": {
            "name": name,
            "labels": spec.pop("labels", {"suite": "sandbox-kube"}),
            "annotations": spec.pop("annotations", {}),
        },
        "spec": {
            "restartPolicy": spec.pop("restart_policy", "Never"),
            "containers": [container],
            **spec,
        },
    }


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def wait_phase(
    core: client.CoreV1Api,
    name: str,
    phases: tuple[str, ...],
    namespace: str = "default",
    timeout: float = 20.0,
) -> Any:
    def check() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in phases else None

    return wait_for(check, timeout)
