from __future__ import annotations

import json
import socket
from pathlib import Path

from hello_api import __version__


def test_healthz_is_ok_when_ready(serve) -> None:
    _, client = serve()
    answer = client.get("/healthz")
    assert (answer.status, answer.body) == (200, b"ok")


def test_healthz_says_why_it_is_not_ready(serve) -> None:
    server, client = serve(default_language="tlh")
    answer = client.get("/healthz")
    assert answer.status == 503
    assert answer.body.startswith(b"not ready: DEFAULT_LANGUAGE must be one of")
    assert client.get("/livez").status == 200
    server.readiness.mark_ready()
    assert client.get("/healthz").status == 200


def test_hello_negotiates_chinese(serve) -> None:
    _, client = serve()
    answer = client.get("/hello?name=%E6%9D%8E%E9%9B%B7", {"Accept-Language": "zh-CN,en;q=0.5"})
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert answer.json() == {"message": "你好，李雷！", "language": "zh", "name": "李雷"}


def test_hello_uses_the_configured_default_language(serve) -> None:
    _, client = serve(default_language="es")
    assert client.get("/hello").json()["message"] == "¡Hola, mundo!"


def test_every_answer_names_the_site_and_the_request(serve) -> None:
    _, client = serve(site_name="site-a")
    for path in ("/healthz", "/livez", "/hello", "/version", "/missing"):
        answer = client.get(path, {"X-Request-Id": "req-42"})
        assert answer.headers["X-Served-By"] == "site-a", path
        assert answer.headers["X-Request-Id"] == "req-42", path


def test_unusable_request_id_is_replaced(serve) -> None:
    _, client = serve()
    answer = client.get("/livez", {"X-Request-Id": "bad id\twith spaces"})
    assert len(answer.headers["X-Request-Id"]) == 16


def test_version_reports_the_baked_commit(serve, tmp_path: Path) -> None:
    build_info = tmp_path / "BUILD_INFO.json"
    build_info.write_text(json.dumps({"commit": "a" * 40}), encoding="utf-8")
    _, client = serve(build_info_path=build_info, environment="staging")
    answer = client.get("/version")
    assert answer.headers["Server"] == f"hello-api/{__version__}"
    assert answer.json() == {
        "service": "hello-api",
        "version": __version__,
        "commit": "a" * 40,
        "environment": "staging",
    }


def test_version_without_build_info(serve, tmp_path: Path) -> None:
    _, client = serve(build_info_path=tmp_path / "absent.json")
    assert client.get("/version").json()["commit"] == "unknown"


def test_unknown_path_and_method(serve) -> None:
    _, client = serve()
    assert client.get("/nope").status == 404
    answer = client.request("POST", "/hello")
    assert answer.status == 405
    assert answer.headers["Allow"] == "GET, HEAD"


def test_head_has_no_body(serve) -> None:
    _, client = serve()
    answer = client.request("HEAD", "/hello")
    assert answer.status == 200
    assert answer.body == b""
    assert int(answer.headers["Content-Length"]) > 0


def test_too_many_query_fields_is_a_bad_request(serve) -> None:
    _, client = serve()
    query = "&".join(f"f{i}=1" for i in range(30))
    assert client.get(f"/hello?{query}").status == 400


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request)
        return connection.makefile("rb").read()


def test_requests_http_server_rejects_still_get_an_answer(serve) -> None:
    _, client = serve(site_name="site-a")
    unknown_method = _raw(client.port, b"BREW /hello HTTP/1.0\r\n\r\n")
    assert unknown_method.startswith(b"HTTP/1.0 501")
    assert b"X-Served-By: site-a" in unknown_method
    assert b"Bad request version" in _raw(client.port, b"GET /hello HTTP/x.y\r\n\r\n")
    assert client.get("/livez").status == 200
