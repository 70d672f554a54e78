"""Fixtures of the REST API tests: the in-process api-server (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.harness import ApiServer, api_server


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    with api_server() as running:
        yield running
