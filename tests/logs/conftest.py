"""One worker run of every logging scenario, shared by the tests of this folder.

Running the tasks costs a metadata DB migration and a worker process; doing it once per session
and asserting on the outcome from several tests keeps the folder inside its time budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.es.testing import RunningEs, run_es
from tests.logs.harness import AirflowHome, TaskRun, log_id, log_settings

DAG_ID = "log_scenarios"
RUN_ID = "manual__logs_scenarios"
TASKS = [
    "say_hello",
    "fail_loudly",
    "flood",
    "hard_text",
    "upload_while_es_down",
    "upload_while_es_busy",
    "upload_once_throttled",
    "upload_too_large",
]
READ_BACK = ["say_hello", "fail_loudly", "hard_text"]
TOO_LARGE_BYTES = 512 * 1024


@dataclass
class Scenarios:
    """The stand-in, the Airflow home, each task's run and the logs read back through the API."""

    es: RunningEs
    home: AirflowHome
    runs: dict[str, TaskRun]
    read_back: dict[str, list[dict[str, Any]]]

    def docs(self, task_id: str) -> list[dict[str, Any]]:
        return self.es.documents("airflow-task-logs*", log_id=self.runs[task_id].log_id)


def _inject_faults(es: RunningEs) -> None:
    def scoped(task_id: str) -> str:
        return log_id(DAG_ID, task_id, RUN_ID)

    es.set_fault("down", path="_bulk", body=scoped("upload_while_es_down"))
    es.set_fault("status", status=429, path="_bulk", body=scoped("upload_while_es_busy"))
    es.set_fault("status", status=429, path="_bulk", body=scoped("upload_once_throttled"), times=1)
    es.set_fault(
        "status",
        status=413,
        path="_bulk",
        body=scoped("upload_too_large"),
        min_bytes=TOO_LARGE_BYTES,
    )


@pytest.fixture(scope="session")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenarios]:
    with run_es() as es:
        from operators.logsearch.setup import install_index_template

        install_index_template(es.client(), log_settings(es.url))
        _inject_faults(es)
        home = AirflowHome(Path(tmp_path_factory.mktemp("airflow-home")), es.url)
        home.migrate()
        runs = home.run_tasks(DAG_ID, TASKS, RUN_ID)
        read_back = home.read_logs([runs[task] for task in READ_BACK])
        yield Scenarios(es=es, home=home, runs=runs, read_back=read_back)
