"""kubectl as an outside check: get, apply, logs -f and rollout status against a site.

client-go sends a bearer token only over HTTPS, so kubectl uses the site's HTTPS kubeconfig.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.kube.testing import RunningSite, run_site

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: app
        image: registry.local:5000/web:{version}
        command: ["{python}", "{app}"]
        env: [{{name: VERSION, value: "{version}"}}]
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
"""


@pytest.fixture(scope="module")
def tls_site() -> Iterator[RunningSite]:
    with run_site("site-cli", speed=10, tls=True) as running:
        yield running


def kubectl(site: RunningSite, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {
        "KUBECONFIG": str(site.https_kubeconfig_path),
        "PATH": "/usr/bin:/bin",
        "HOME": str(site.kubeconfig_path.parent),
    }
    return subprocess.run(
        [KUBECTL, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_kubectl_apply_rollout_status_get_and_logs(
    tls_site: RunningSite, app_script: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(MANIFEST.format(version="v1", python=sys.executable, app=app_script))
    applied = kubectl(tls_site, "apply", "--validate=false", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "deployment.apps/web created"
    status = kubectl(tls_site, "rollout", "status", "deployment/web", "--timeout=60s")
    assert status.returncode == 0, status.stderr
    assert 'deployment "web" successfully rolled out' in status.stdout

    manifest.write_text(MANIFEST.format(version="v2", python=sys.executable, app=app_script))
    applied = kubectl(tls_site, "apply", "--validate=false", "-f", str(manifest))
    assert applied.stdout.strip() == "deployment.apps/web configured", applied.stderr
    status = kubectl(tls_site, "rollout", "status", "deployment/web", "--timeout=60s")
    assert status.returncode == 0 and "successfully rolled out" in status.stdout, status.stderr

    table = kubectl(tls_site, "get", "deployments")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row.split()[:4] == ["web", "2/2", "2", "2"]
    pods = json.loads(kubectl(tls_site, "get", "pods", "-l", "app=web", "-o", "json").stdout)[
        "items"
    ]
    images = {
        p["spec"]["containers"][0]["image"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    }
    assert images == {"registry.local:5000/web:v2"}
    logs = kubectl(tls_site, "logs", pods[0]["metadata"]["name"])
    assert logs.stdout.startswith("serving v")


def test_kubectl_logs_follow_streams_until_the_container_exits(tls_site: RunningSite) -> None:
    code = (
        "import time\nfor i in range(5):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n"
    )
    created = kubectl(
        tls_site,
        "run",
        "ticker",
        "--image=python:3.11-slim",
        "--restart=Never",
        "--command",
        "--",
        sys.executable,
        "-c",
        code,
    )
    assert created.returncode == 0, created.stderr
    followed = kubectl(tls_site, "logs", "-f", "ticker", "--pod-running-timeout=20s")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == [f"tick {i}" for i in range(5)]
    described = kubectl(tls_site, "get", "pod", "ticker", "-o", "jsonpath={.status.phase}")
    assert described.stdout in ("Running", "Succeeded")


def test_kubectl_without_token_is_refused(tls_site: RunningSite, tmp_path: Path) -> None:
    config = tls_site.https_kubeconfig_path.read_text().replace(tls_site.token, "wrong-token")
    path = tmp_path / "bad-kubeconfig"
    path.write_text(config)
    env = {"KUBECONFIG": str(path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    refused = subprocess.run(
        [KUBECTL, "get", "pods"], env=env, capture_output=True, text=True, timeout=30
    )
    assert (
        refused.returncode != 0
        and "Unauthorized" in refused.stderr
        or "credentials" in refused.stderr
    )
