"""`python -m sandbox.kube` as other harnesses start it: ready line, kubeconfig, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.sandbox_kube.conftest import pod_body, python_command, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]


def test_cli_prints_ready_line_writes_kubeconfig_and_kills_pods_on_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "site-a.kubeconfig"
    pid_file = tmp_path / "pid"
    command = [
        sys.executable,
        "-m",
        "sandbox.kube",
        "--site",
        "site-a",
        "--port",
        "0",
        "--ingress-port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--namespace",
        "prod",
    ]
    server = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        assert ready["site"] == "site-a" and ready["kubeconfig"] == str(kubeconfig)
        assert ready["api"].startswith("http://127.0.0.1:") and ready["ingress"].startswith(
            "http://127.0.0.1:"
        )
        document = yaml.safe_load(kubeconfig.read_text())
        assert document["current-context"] == "site-a"
        assert document["contexts"][0]["context"]["namespace"] == "default"
        assert document["clusters"][0]["cluster"]["server"] == ready["api"]
        assert document["users"][0]["user"]["token"]
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"

        api = config.new_client_from_config(config_file=str(kubeconfig), context="site-a")
        core = client.CoreV1Api(api)
        assert "prod" in {n.metadata.name for n in core.list_namespace().items}
        code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
        core.create_namespaced_pod("prod", pod_body("long-runner", python_command(code)))
        wait_for(lambda: pid_file.exists() and pid_file.read_text())
        pod_pid = int(pid_file.read_text())
        api.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
    assert server.returncode == 0, server.stderr.read() if server.stderr else ""
    wait_for(lambda: not _running(pod_pid), timeout=5)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(") ")[1][0] != "Z"
