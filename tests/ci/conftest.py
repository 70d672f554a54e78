"""A CI world for integration tests: the sample repository, a Kubernetes stand-in site with the
``ci`` namespace, a CI catalog with a few test-only services, and the Airflow connection to it.

One world per test module (starting a site and making the repository take about a second).
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.sample_repo import RepositorySummary, create_repository

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# Prints lines (some not valid UTF-8, one of 15,000 characters, some sharing a timestamp),
# then a JUnit result; ``sleep`` seconds between lines when $SLOW is set.
CHATTY = r"""
import base64, os, sys, time
out = sys.stdout.buffer
slow = float(os.environ.get("SLOW", "0"))
count = int(os.environ.get("LINES", "3000"))
for i in range(count):
    if i % 500 == 7:
        out.write(b"line %d bad \xff\xfe bytes\n" % i)
    elif i == 11:
        out.write(b"line 11 " + b"L" * 15000 + b"\n")
    else:
        out.write(b"line %d ok \xe4\xbd\xa0\xe5\xa5\xbd\n" % i)
    if slow:
        out.flush()
        time.sleep(slow)
junit = b'<testsuites><testsuite><testcase classname="t" name="a"/></testsuite></testsuites>'
out.write(b'::sre-result:: {"kind": "junit", "encoding": "base64", "data": "' + base64.b64encode(junit) + b'"}\n')
out.write(b"last line without newline")
out.flush()
"""

# Reports a JUnit result that is a "billion laughs" entity bomb.
HOSTILE = r"""
import base64
bomb = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
    + ']><testsuites><testsuite><testcase name="&lol9;"/></testsuite></testsuites>'
)
print("tests ran")
print('::sre-result:: {"kind": "junit", "encoding": "base64", "data": "%s"}' % base64.b64encode(bomb.encode()).decode())
"""

HOG = r"""
import sys, time
print("allocating", flush=True)
hog = b"x" * (300 << 20)
print("allocated", len(hog), flush=True)
time.sleep(30)
"""


def write_ci_catalog(path: Path) -> Path:
    """The shipped catalog plus services that only tests run."""
    data = yaml.safe_load((ROOT / "include" / "catalog.yaml").read_text(encoding="utf-8"))
    base = next(s for s in data["services"] if s["name"] == "hello-api")
    strict = copy.deepcopy(base)
    strict.update(name="hello-strict", description="hello-api with a gate no scan passes")
    strict["quality"]["max_findings"] = {"critical": 0, "high": 0, "medium": 0, "low": 100}
    oom = copy.deepcopy(base)
    oom.update(name="hello-oom", description="a test step that allocates past its memory limit")
    oom["steps"]["test"] = {
        "image": "python:3.11-slim",
        "command": ["python", "-c", HOG],
        "resources": {"cpu": "500m", "memory": "64Mi"},
        "timeout_minutes": 5,
    }
    chatty = copy.deepcopy(base)
    chatty.update(name="hello-chatty", description="a test step that prints a lot")
    chatty["steps"]["test"] = {
        "image": "python:3.11-slim",
        "command": ["python", "-c", CHATTY],
        "env": {"LINES": "3000", "SLOW": "0.0005"},
        "resources": {"cpu": "500m", "memory": "256Mi"},
        "timeout_minutes": 5,
    }
    slow = copy.deepcopy(chatty)
    slow.update(name="hello-slow", description="a test step that takes a few seconds")
    slow["steps"]["test"]["env"] = {"LINES": "300", "SLOW": "0.015"}
    hostile = copy.deepcopy(chatty)
    hostile.update(name="hello-hostile", description="a test step that reports an XML bomb")
    hostile["steps"]["test"] = {**chatty["steps"]["test"], "command": ["python", "-c", HOSTILE]}
    hostile["steps"]["test"].pop("env")
    data["services"] += [strict, oom, chatty, slow, hostile]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class CiWorld:
    """What the CI tests need: the site, its client, the repository and the paths."""

    site: Any
    core: Any
    repo: RepositorySummary
    images: Path
    catalog: Path

    def pods(self, selector: str = "") -> list[Any]:
        return list(self.core.list_namespaced_pod("ci", label_selector=selector).items)

    def delete_all_pods(self) -> None:
        self.core.delete_collection_namespaced_pod("ci", grace_period_seconds=0)


@pytest.fixture(scope="session")
def sample_repo(tmp_path_factory: pytest.TempPathFactory) -> RepositorySummary:
    return create_repository(tmp_path_factory.mktemp("git"))


@pytest.fixture(scope="module")
def ci_world(
    tmp_path_factory: pytest.TempPathFactory, sample_repo: RepositorySummary
) -> Iterator[CiWorld]:
    from kubernetes import client, config

    from sandbox.kube.testing import run_site

    scratch = tmp_path_factory.mktemp("ci-world")
    images = scratch / "images"
    images.mkdir()
    catalog = write_ci_catalog(scratch / "catalog.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        patch.setenv("SRE_CATALOG_PATH", str(catalog))
        patch.setenv("SRE_GIT_BASE", sample_repo.path.parent.as_uri())
        patch.setenv("SRE_IMAGE_STORE", str(images))
        with run_site("ci", images_dir=images, namespaces=["ci"]) as site:
            patch.setenv(
                "AIRFLOW_CONN_KUBERNETES_CI",
                json.dumps(
                    {
                        "conn_type": "kubernetes",
                        "extra": {"kube_config_path": str(site.kubeconfig_path), "namespace": "ci"},
                    }
                ),
            )
            api = config.new_client_from_config(config_file=str(site.kubeconfig_path))
            try:
                yield CiWorld(site, client.CoreV1Api(api), sample_repo, images, catalog)
            finally:
                api.close()


class CapturedLogs:
    """Log events of Airflow's structlog loggers (``self.log`` of operators, hooks, triggers)."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def messages(self, logger_suffix: str = "") -> list[str]:
        return [
            str(event["event"])
            for event in self.events
            if str(event.get("logger") or "").endswith(logger_suffix)
        ]

    def pod_lines(self, logger_suffix: str) -> list[str]:
        """The ``[main] ...`` pod lines one logger wrote, split out of their batched records."""
        lines = [line for message in self.messages(logger_suffix) for line in message.split("\n")]
        return [line for line in lines if line.startswith("[main] ")]

    @property
    def text(self) -> str:
        return "\n".join(self.messages())


@pytest.fixture
def logs() -> Iterator[CapturedLogs]:
    import structlog

    def logger_name(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        event["logger"] = getattr(logger, "name", None)
        return event

    with structlog.testing.capture_logs(processors=[logger_name]) as events:
        yield CapturedLogs(events)
