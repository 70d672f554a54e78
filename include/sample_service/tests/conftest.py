"""A real server on a free loopback port for the HTTP tests."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hello_api.config import Settings
from hello_api.server import HelloServer


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        return json.loads(self.body.decode("utf-8"))


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return self.request("GET", path, headers)


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[HelloServer, Client]]]:
    """Start a server with the given settings; it is stopped when the test ends."""
    started: list[tuple[HelloServer, threading.Thread]] = []

    def start(**overrides: object) -> tuple[HelloServer, Client]:
        settings = Settings(**{"port": 0, "site_name": "site-test", **overrides})
        server = HelloServer(settings)
        server.check_ready()
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        started.append((server, thread))
        return server, Client(server.port)

    yield start
    for server, thread in started:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
