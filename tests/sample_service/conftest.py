"""Fixtures for the sample service: its git repository, checkouts of it, running services."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from include.catalog import Service, load_catalog
from sandbox.sample_repo import RepositorySummary, create_repository
from tests.sample_service.support import ServiceProcess


@pytest.fixture(scope="session")
def hello_api() -> Service:
    """The catalog entry the platform runs the sample service's steps from."""
    return load_catalog().service("hello-api")


@pytest.fixture(scope="session")
def sample_repo(tmp_path_factory: pytest.TempPathFactory) -> RepositorySummary:
    return create_repository(tmp_path_factory.mktemp("git"))


@pytest.fixture
def checkout(sample_repo: RepositorySummary, tmp_path: Path) -> Callable[..., Path]:
    """Clone the sample repository at a ref, as a step pod's workspace."""

    def clone(ref: str, name: str = "workspace") -> Path:
        workspace = tmp_path / name
        subprocess.run(
            ["git", "clone", "--quiet", "--no-checkout", sample_repo.url, str(workspace)],
            check=True,
            timeout=30,
        )
        subprocess.run(
            ["git", "-C", str(workspace), "checkout", "--quiet", "--detach", ref],
            check=True,
            timeout=30,
        )
        return workspace

    return clone


@pytest.fixture
def service() -> Iterator[Callable[..., ServiceProcess]]:
    """Start `python -m hello_api` in a directory; every one started is stopped at the end."""
    started: list[ServiceProcess] = []

    def start(cwd: Path, env: Mapping[str, str] | None = None) -> ServiceProcess:
        process = ServiceProcess(cwd, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
