"""`python -m sandbox.kube --host/--advertise-host`: where the site listens and what it hands out."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client, config

from sandbox.kube.site import Site, SiteOptions, advertised_host

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def cli_site(kubeconfig: Path, *extra: str) -> Iterator[dict[str, Any]]:
    """Run ``python -m sandbox.kube`` with `extra` options; yield its ready line."""
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
        *extra,
    ]
    server = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line, server.stderr.read() if server.stderr else ""
        yield json.loads(line)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
    assert server.returncode == 0, server.stderr.read() if server.stderr else ""


def server_of(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])


def namespaces_through(kubeconfig: Path) -> set[str]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        return {n.metadata.name for n in client.CoreV1Api(api).list_namespace().items}
    finally:
        api.close()


def refuses(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_listen_host_is_advertised_and_the_only_address_served(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "site-a.kubeconfig"
    with cli_site(kubeconfig, "--host", "127.0.0.2", "--tls") as ready:
        api = urllib.parse.urlsplit(ready["api"])
        assert (api.scheme, api.hostname) == ("http", "127.0.0.2")
        assert ready["ingress"].startswith("http://127.0.0.2:")
        assert server_of(kubeconfig) == ready["api"]
        https_kubeconfig = Path(ready["https_kubeconfig"])
        assert server_of(https_kubeconfig).startswith("https://127.0.0.2:")
        assert "default" in namespaces_through(kubeconfig)
        # The certificate names the listen host, so the HTTPS client verifies it.
        assert "default" in namespaces_through(https_kubeconfig)
        unknown_host = requests.get(ready["ingress"], headers={"Host": "nothing.prod"}, timeout=5)
        assert unknown_host.status_code == 404
        assert api.port is not None and refuses("127.0.0.1", api.port)


def test_advertise_host_goes_into_the_ready_line_and_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "site-a.kubeconfig"
    with cli_site(
        kubeconfig, "--host", "127.0.0.1", "--advertise-host", "localhost", "--namespace", "prod"
    ) as ready:
        assert ready["api"].startswith("http://localhost:")
        assert ready["ingress"].startswith("http://localhost:")
        assert server_of(kubeconfig) == ready["api"]
        assert "prod" in namespaces_through(kubeconfig)
        info = requests.get(ready["api"] + "/sandbox/site", timeout=5).json()
        assert (info["api"], info["ingress"]) == (ready["api"], ready["ingress"])


def test_any_address_is_advertised_as_loopback_unless_told(tmp_path: Path) -> None:
    # Only the URL logic; nothing is bound.
    assert advertised_host("0.0.0.0") == "127.0.0.1"
    assert advertised_host("::") == "127.0.0.1"
    assert advertised_host("127.0.0.5") == "127.0.0.5"
    any_address = Site(SiteOptions(host="0.0.0.0", state_dir=tmp_path / "a"))
    assert any_address.api_url == "http://127.0.0.1:0"
    named = Site(
        SiteOptions(host="0.0.0.0", advertise_host="kube-site-a", state_dir=tmp_path / "b")
    )
    assert named.api_url == "http://kube-site-a:0" and named.ingress_url == "http://kube-site-a:0"
    assert 'server: "http://kube-site-a:0"' in named.kubeconfig()
    assert Site(SiteOptions(host="::1", state_dir=tmp_path / "c")).api_url == "http://[::1]:0"
