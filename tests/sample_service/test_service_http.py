"""hello-api from its source tree, as a process on a free loopback port."""

from __future__ import annotations

import re
import socket

import pytest

from tests.sample_service.support import SERVICE_TREE

pytestmark = pytest.mark.timeout(60)


def _source_version() -> str:
    text = (SERVICE_TREE / "hello_api" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert found
    return found.group(1)


def test_endpoints(service) -> None:
    hello = service(SERVICE_TREE, {"SITE_NAME": "site-a", "ENVIRONMENT": "production"})

    health = hello.get("/healthz")
    assert (health.status, health.body) == (200, b"ok")
    assert hello.get("/livez").status == 200

    greeting = hello.get("/hello?name=%E6%9D%8E%E9%9B%B7", {"Accept-Language": "zh-CN,zh;q=0.9"})
    assert greeting.status == 200
    assert greeting.json() == {"message": "你好，李雷！", "language": "zh", "name": "李雷"}
    assert hello.get("/hello?name=Ada&lang=de").json()["message"] == "Hallo, Ada!"

    version = hello.get("/version").json()
    assert version == {
        "service": "hello-api",
        "version": _source_version(),
        "commit": "unknown",
        "environment": "production",
    }

    for path in ("/healthz", "/livez", "/hello", "/version", "/no-such-path"):
        assert hello.get(path).headers["X-Served-By"] == "site-a", path
    assert hello.get("/no-such-path").status == 404


def test_without_site_name_the_host_serves(service) -> None:
    hello = service(SERVICE_TREE)
    assert hello.get("/livez").headers["X-Served-By"] == socket.gethostname()


def test_unusable_setting_keeps_it_alive_but_not_ready(service) -> None:
    hello = service(SERVICE_TREE, {"DEFAULT_LANGUAGE": "tlh"})
    health = hello.get("/healthz")
    assert health.status == 503
    assert b"DEFAULT_LANGUAGE" in health.body
    assert hello.get("/livez").status == 200


def test_sigterm_stops_cleanly(service) -> None:
    hello = service(SERVICE_TREE)
    assert hello.get("/hello").status == 200
    assert hello.stop() == 0
    assert "stopping signal=SIGTERM" in hello.log
    assert hello.log.rstrip().endswith("stopped")
