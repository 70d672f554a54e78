"""Helpers for the sample service tests: run a CI step, read its results, run the service."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE_TREE = ROOT / "include" / "sample_service"
RESULT_PREFIX = "::sre-result:: "
_LISTENING = re.compile(r"listening host=\S+ port=(\d+)")


def step_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a step pod: the venv's python first on PATH, nothing from pytest."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "COVERAGE_", "GIT_")) and key != "PYTHONPATH"
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


@dataclass
class StepRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def results(self) -> list[dict[str, object]]:
        return parse_results(self.stdout)


def run_step(command: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> StepRun:
    completed = subprocess.run(
        list(command),
        cwd=cwd,
        env=step_env(env),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return StepRun(completed.returncode, completed.stdout, completed.stderr)


def parse_results(stdout: str) -> list[dict[str, object]]:
    """The step's result lines; they must be the last lines of its output."""
    lines = stdout.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith(RESULT_PREFIX)), len(lines))
    tail = lines[first:]
    assert all(line.startswith(RESULT_PREFIX) for line in tail), "result lines are not at the end"
    return [json.loads(line.removeprefix(RESULT_PREFIX)) for line in tail]


def result_of(
    results: Sequence[Mapping[str, object]], kind: str, **match: str
) -> Mapping[str, object]:
    found = [
        r for r in results if r["kind"] == kind and all(r.get(k) == v for k, v in match.items())
    ]
    assert len(found) == 1, f"expected one {kind} result {match}, got {len(found)}"
    return found[0]


def decoded(result: Mapping[str, object]) -> bytes:
    assert result["encoding"] == "base64"
    return base64.b64decode(str(result["data"]), validate=True)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        return json.loads(self.body)


class ServiceProcess:
    """`python -m hello_api` in ``cwd`` on a free loopback port, stopped by :meth:`stop`.

    ``HOST`` and ``PORT`` are always loopback and a free port, whatever ``env`` says.
    """

    def __init__(self, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        settings = {**(env or {}), "HOST": "127.0.0.1", "PORT": "0"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hello_api"],
            cwd=cwd,
            env=step_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.port = 0
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._listening.wait(15) or not self.port:
            self.stop()
            raise AssertionError("the service did not start:\n" + self.log)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            found = _LISTENING.search(line)
            if found:
                self.port = int(found.group(1))
                self._listening.set()
        self._listening.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", path, headers=dict(headers or {}))
            response = connection.getresponse()
            return Answer(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def stop(self) -> int:
        """SIGTERM, then the exit status (killed after 10 s, which a test then sees as -9)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        return self.process.returncode
