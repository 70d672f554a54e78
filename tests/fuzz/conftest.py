"""Fixtures of the fuzz tests: the in-process api-server with the plugin mounted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.harness import ApiServer, api_server


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    with api_server() as running:
        yield running
