"""`python -m sandbox.gateway --host`: loopback by default, anything else only with an admin key."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from sandbox.gateway.__main__ import parse_args


@pytest.mark.timeout(30)
def test_listens_on_the_given_loopback_host_without_warning() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.gateway",
            "--host",
            "127.0.0.2",
            "--admin-port",
            "0",
            "--proxy-port",
            "0",
            "--admin-key",
            "k-bind",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        assert all(url.startswith("http://127.0.0.2:") for url in urls.values()), urls
        routes = requests.get(
            urls["admin"] + "/apisix/admin/routes", headers={"X-API-KEY": "k-bind"}, timeout=5
        )
        assert routes.json() == {"total": 0, "list": []}
        port = urls["admin"].rsplit(":", 1)[1]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/apisix/admin/routes", timeout=5)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "WARNING" not in stderr


def test_default_host_is_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args([]).host == "127.0.0.1"
    for host in ("localhost", "127.0.0.2", "::1"):
        assert parse_args(["--host", host]).host == host
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "gateway"])
def test_non_loopback_host_is_refused_without_admin_key(
    host: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # parse_args decides before anything listens, so nothing is bound here.
    with pytest.raises(SystemExit) as refused:
        parse_args(["--host", host])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert f"--host {host} is not a loopback address" in err and "--admin-key" in err


def test_non_loopback_host_with_admin_key_warns(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(["--host", "0.0.0.0", "--admin-key", "k-bind"])
    assert (args.host, args.admin_key) == ("0.0.0.0", "k-bind")
    err = capsys.readouterr().err
    assert err.startswith("WARNING: listening on 0.0.0.0: the admin API is reachable")
    assert "--admin-key" in err and "k-bind" not in err
