"""Helpers to run real tasks with remote logging against the Elasticsearch stand-in.

Reusable by any test that needs "a task ran on a worker and its log went to Elasticsearch":

- :func:`logging_settings` reads ``include/logging/task-logs.env``, the settings the compose
  stack and the Helm values use;
- :class:`AirflowHome` is an Airflow home of its own (SQLite metadata DB migrated once) whose
  :meth:`~AirflowHome.env` points Airflow at a given Elasticsearch URL and DAG folder;
- :meth:`AirflowHome.run_tasks` runs task instances through Airflow's supervisor in a child
  process (see ``tests/logs/worker.py``) and returns a :class:`TaskRun` for each;
- :meth:`AirflowHome.read_logs` reads task tries' logs through the api-server's log route.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from operators.logsearch.settings import LogSettings

ROOT = Path(__file__).resolve().parents[2]
LOGGING_ENV_FILE = ROOT / "include" / "logging" / "task-logs.env"
INDEX_TEMPLATE_FILE = ROOT / "include" / "logging" / "index-template.json"
SCENARIO_DAGS = Path(__file__).resolve().parent / "dags"
PYTHON = sys.executable


def logging_settings(path: Path = LOGGING_ENV_FILE) -> dict[str, str]:
    """The KEY=VALUE pairs of the logging env file, in file order."""
    settings: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not key or key != key.strip() or " " in key:
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        settings[key] = value
    return settings


def log_id(dag_id: str, task_id: str, run_id: str, map_index: int = -1, try_number: int = 1) -> str:
    """The log_id the pinned template gives a task try."""
    template = logging_settings()["AIRFLOW__ELASTICSEARCH__LOG_ID_TEMPLATE"]
    return template.format(
        dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index, try_number=try_number
    )


def log_settings(es_url: str) -> LogSettings:
    """The search/link settings the env file gives, with ``es_url`` as the host."""
    from operators.logsearch.settings import LogSettings

    values = logging_settings()
    return LogSettings(
        host=es_url,
        target_index=values["AIRFLOW__ELASTICSEARCH__TARGET_INDEX"],
        index_patterns=values["AIRFLOW__ELASTICSEARCH__INDEX_PATTERNS"],
        log_id_template=values["AIRFLOW__ELASTICSEARCH__LOG_ID_TEMPLATE"],
        offset_field=values["AIRFLOW__ELASTICSEARCH__OFFSET_FIELD"],
        frontend=values["AIRFLOW__ELASTICSEARCH__FRONTEND"],
    )


@dataclass
class TaskRun:
    """What a worker run produced: exit code, final state, log file and the supervisor's output."""

    dag_id: str
    task_id: str
    run_id: str
    ti_id: str
    exit_code: int
    state: str | None
    try_number: int
    map_index: int
    log_path: Path
    output: str

    @property
    def log_id(self) -> str:
        return log_id(self.dag_id, self.task_id, self.run_id, self.map_index, self.try_number)

    def supervisor_output(self) -> str:
        """The worker output of this task alone: from the previous task's end to this one's."""
        marker = "Workload finished"
        chunks: list[str] = []
        current: list[str] = []
        for line in self.output.splitlines():
            current.append(line)
            if marker in line:
                chunks.append("\n".join(current))
                current = []
        for chunk in chunks:
            if self.ti_id in chunk.splitlines()[-1]:
                return chunk
        raise LookupError(
            f"no supervisor output ends with task {self.task_id} (ti_id {self.ti_id})"
        )

    def local_lines(self) -> list[dict[str, Any]]:
        """The JSON lines of the local log file the supervisor wrote."""
        raw = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in raw if line.strip()]


class AirflowHome:
    """An Airflow home in a temporary folder, with its own SQLite metadata DB."""

    def __init__(self, path: Path, es_url: str, dags_folder: Path = SCENARIO_DAGS) -> None:
        self.path = path
        self.es_url = es_url
        self.dags_folder = dags_folder
        self.extra_env: dict[str, str] = {}
        self._read_dirs: dict[str, Path] = {}

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment of an Airflow process of this home: our logging settings, our ES host."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AIRFLOW") and k != "PYTEST_CURRENT_TEST"
        }
        env.update(
            {
                "AIRFLOW_HOME": str(self.path),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.path}/airflow.db",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.path / "logs"),
                "AIRFLOW__ELASTICSEARCH__HOST": self.es_url,
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
                # The supervisor notices a finished task on its next heartbeat tick; keep it short.
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            }
        )
        env.update(logging_settings())
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def migrate(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [PYTHON, "-m", "airflow", "db", "migrate"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )

    def run_tasks(
        self, dag_id: str, task_ids: list[str], run_id: str, *, timeout: float = 240, **env: str
    ) -> dict[str, TaskRun]:
        """Run task instances one after the other through Airflow's supervisor, as a worker would."""
        command = [PYTHON, "-m", "tests.logs.worker", "run", "--dag-id", dag_id, "--run-id", run_id]
        for task_id in task_ids:
            command += ["--task-id", task_id]
        done = subprocess.run(
            command,
            env=self.env(**env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = done.stdout + done.stderr
        result_lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not result_lines:
            raise RuntimeError(f"worker run failed (exit {done.returncode}):\n{output[-5000:]}")
        runs = {}
        for outcome in json.loads(result_lines[-1].removeprefix("RESULT ")):
            runs[outcome["task_id"]] = TaskRun(
                dag_id=dag_id,
                task_id=outcome["task_id"],
                run_id=run_id,
                ti_id=outcome["ti_id"],
                exit_code=outcome["exit_code"],
                state=outcome["state"],
                try_number=outcome["try_number"],
                map_index=outcome["map_index"],
                log_path=Path(outcome["log_path"]),
                output=output,
            )
        return runs

    def read_logs(
        self, runs: list[TaskRun], *, timeout: float = 180
    ) -> dict[str, list[dict[str, Any]]]:
        """Each task try's log as the UI's log tab gets it: NDJSON from the api-server's log route."""
        if not runs:
            return {}
        first = runs[0]
        if any(
            (r.dag_id, r.run_id, r.try_number) != (first.dag_id, first.run_id, first.try_number)
            for r in runs
        ):
            raise ValueError("read_logs reads tries of one DAG run and one try number at a time")
        out = self.path / f"read-{first.run_id}-{first.try_number}"
        out.mkdir(parents=True, exist_ok=True)
        command = [
            PYTHON,
            "-m",
            "tests.logs.worker",
            "read",
            "--dag-id",
            first.dag_id,
            "--run-id",
            first.run_id,
            "--try-number",
            str(first.try_number),
            "--out",
            str(out),
        ]
        for run in runs:
            command += ["--task-id", run.task_id]
        done = subprocess.run(
            command,
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"log read failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        self._read_dirs.update({run.task_id: out for run in runs})
        return {
            run.task_id: [
                json.loads(line)
                for line in (out / f"{run.task_id}.ndjson").read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            for run in runs
        }

    def extra_links(self, run: TaskRun) -> dict[str, Any]:
        """The api-server's answer to ``.../taskInstances/{task}/links`` (after :meth:`read_logs`)."""
        links: dict[str, Any] = json.loads(
            (self._read_dirs[run.task_id] / f"{run.task_id}.links.json").read_text()
        )
        return links
