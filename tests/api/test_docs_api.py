"""docs/api.md works when pasted: its bash blocks run in one shell against a real api-server.

The api-server runs on loopback as ``airflow api-server`` with its own AIRFLOW_HOME, SQLite
metadata DB, the simple auth manager with ``make ui``'s users, and this repository's DAGs and
plugins. No scheduler runs: ``doc_world.py`` moves the triggered run along between the blocks
(a task ran and logged, an approval waits, the run finished), as the scheduler would.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.harness import ROOT

DOC = ROOT / "docs" / "api.md"
UI_USERS = "admin:admin,release-manager:op,developer:user,viewer:viewer"
STEP = re.compile(r"<!-- docs-step: ([a-z-]+) -->\n```bash\n(.*?)```", re.S)


def doc_steps() -> list[tuple[str, str]]:
    return STEP.findall(DOC.read_text(encoding="utf-8"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lines:
    """Lines a child process writes, read in a thread so waits can time out."""

    def __init__(self, stream) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def until(self, marker: str, timeout: float) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"timed out waiting for {marker!r}; got {seen}") from None
            if line is None:
                raise AssertionError(f"process ended before {marker!r}; got {seen}")
            if line.startswith(marker):
                seen.append(line)
                return seen
            seen.append(line)


class Child:
    def __init__(self, args: list[str], env: dict[str, str], **kwargs) -> None:
        self.process = subprocess.Popen(
            args,
            env=env,
            cwd=ROOT,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
            **kwargs,
        )
        self.lines = Lines(self.process.stdout)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("docs-home")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "SRE_"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": UI_USERS,
            "AIRFLOW__API_AUTH__JWT_SECRET": "docs-tests-" + "0123456789abcdef" * 4,
            "AIRFLOW__API__SECRET_KEY": "docs-tests-secret",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW_CONN_SRE_RECORDS": f"sqlite://{home / 'records.db'}",
            "SRE_GIT_BASE": f"file://{ROOT / '.demo-ui' / 'git'}",
        }
    )
    return env


@pytest.fixture(scope="module")
def world(airflow_env: dict[str, str]) -> Iterator[Child]:
    child = Child([sys.executable, str(Path(__file__).with_name("doc_world.py"))], airflow_env)
    try:
        yield child
    finally:
        child.stop()


def ask(world: Child, **command: str) -> dict:
    world.process.stdin.write(json.dumps(command) + "\n")
    world.process.stdin.flush()
    return json.loads(world.lines.until("{", timeout=120)[-1])


@pytest.fixture(scope="module")
def api_url(airflow_env: dict[str, str], world: Child) -> Iterator[str]:
    ask(world, do="setup")
    port = _free_port()
    log = open(Path(airflow_env["AIRFLOW_HOME"]) / "api-server.log", "w")  # noqa: SIM115
    airflow = Path(sys.executable).with_name("airflow")
    server = subprocess.Popen(
        [str(airflow), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=airflow_env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, "the api-server exited; see api-server.log"
                assert time.monotonic() < deadline, "the api-server did not come up in 90 s"
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()


def test_every_documented_step_is_checked() -> None:
    names = [name for name, _ in doc_steps()]
    assert names == [
        "token",
        "trigger",
        "refused",
        "follow",
        "logs",
        "approve",
        "answer",
        "wait",
        "webhook-secret",
        "webhook-push",
    ]


@pytest.mark.timeout(300)
def test_the_documented_curl_lines_work(
    airflow_env: dict[str, str], world: Child, api_url: str
) -> None:
    env = {**airflow_env, "AIRFLOW": api_url}
    shell = Child(["bash", "--norc", "--noprofile", "-s"], env, stderr=subprocess.STDOUT)
    outputs: dict[str, str] = {}
    try:
        shell.process.stdin.write("set -eo pipefail\n")
        for number, (name, code) in enumerate(doc_steps()):
            if name == "logs":
                ask(world, do="progress", dag_id="delivery_pipeline")
            if name == "approve":
                ask(world, do="park", dag_id="delivery_pipeline")
            if name == "wait":
                ask(world, do="finish", dag_id="delivery_pipeline")
            marker = f"__step_{number}_done__"
            shell.process.stdin.write(f"{code}\necho {marker}\n")
            shell.process.stdin.flush()
            outputs[name] = "\n".join(shell.lines.until(marker, timeout=120)[:-1])
    finally:
        shell.stop()

    assert re.fullmatch(r"\s*", outputs["token"]), outputs["token"]
    assert '"is_paused": false' in outputs["trigger"]
    assert '"state": "queued"' in outputs["trigger"]
    assert '"git_ref": "main"' in outputs["trigger"]
    assert outputs["refused"].startswith("Invalid input for param git_ref: 'main; rm -rf /'")
    assert '"state": "queued"' in outputs["follow"]
    assert "\t-1\t" in outputs["follow"]
    assert "started service=hello-api" in outputs["logs"]
    assert "Release hello-api to the second site?" in outputs["approve"]
    assert '"Approve"' in outputs["answer"] and '"name": "admin"' in outputs["answer"]
    assert outputs["wait"].strip() == "finished: success"
    assert '"status": "triggered"' in outputs["webhook-push"]
    assert '"dag_id": "delivery_pipeline"' in outputs["webhook-push"]
    assert outputs["webhook-push"].strip().endswith('"duplicate"')
