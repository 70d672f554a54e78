"""Probes run in a child process whose environment is a container's, as the compose file sets it.

``python -m tests.stack.probe options`` reads ``[["SECTION", "KEY"], ...]`` on stdin and answers,
for each, whether Airflow (core and installed providers) knows that option (``KEY_CMD`` and
``KEY_SECRET`` name the option ``KEY``; ``[elasticsearch_configs]`` takes the keyword arguments of
``elasticsearch.Elasticsearch``) and what value ``conf.get`` returns for it.

``python -m tests.stack.probe handler LOGFILE`` builds the task-log handlers exactly as an
Airflow process of the stack does at start-up (``import airflow`` configures logging), then
uploads LOGFILE through the remote log IO as a worker would at task end, reads it back as the
api-server would, and reports what it found.

``python -m tests.stack.probe both LOGFILE`` does both in one process.
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace
from typing import Any


def options(pairs: list[list[str]]) -> list[dict[str, Any]]:
    from airflow.configuration import conf
    from airflow.providers.elasticsearch.log.es_task_handler import VALID_ES_CONFIG_KEYS

    description = conf.configuration_description
    answers = []
    for section, key in pairs:
        known_section = description.get(section, {}).get("options", {})
        name = key
        if name not in known_section and name.endswith(("_cmd", "_secret")):
            name = name.rsplit("_", 1)[0]
        if section == "elasticsearch_configs":
            known = name in known_section or name in VALID_ES_CONFIG_KEYS
        else:
            known = name in known_section
        value = conf.get(section, name, fallback=None) if known else None
        answers.append({"section": section, "key": key, "known": known, "value": value})
    return answers


def handler(log_file: str) -> dict[str, Any]:
    import airflow  # noqa: F401 - importing configures logging like every Airflow process
    from airflow.providers.elasticsearch.log.es_task_handler import (
        ElasticsearchRemoteLogIO,
        ElasticsearchTaskHandler,
    )
    from airflow.sdk.log import load_remote_log_handler
    from airflow.utils.log.log_reader import TaskLogReader

    reader = TaskLogReader().log_handler
    remote = load_remote_log_handler()
    report: dict[str, Any] = {
        "reader_class": type(reader).__name__,
        "reader_is_es": isinstance(reader, ElasticsearchTaskHandler),
        "remote_class": type(remote).__name__,
        "remote_is_es": isinstance(remote, ElasticsearchRemoteLogIO),
    }
    if not isinstance(remote, ElasticsearchRemoteLogIO) or not isinstance(
        reader, ElasticsearchTaskHandler
    ):
        return report
    report.update(
        host=remote.host,
        write_to_es=remote.write_to_es,
        target_index=remote.target_index,
        index_patterns=remote.index_patterns,
        log_id_template=remote.log_id_template,
        reader_log_id_template=reader.log_id_template,
        frontend=reader.frontend,
        server_version=remote.client.info()["version"]["number"],
    )
    ti = SimpleNamespace(
        dag_id="stack_probe",
        task_id="probe",
        run_id="manual__probe",
        map_index=-1,
        try_number=1,
        id=None,
    )
    remote.upload(log_file, ti)  # type: ignore[arg-type]
    remote.client.indices.refresh(index=remote.target_index)
    _, messages = remote.read(log_file, ti)  # type: ignore[arg-type]
    report["read_back"] = [json.loads(message)["event"] for message in messages]
    report["external_url"] = reader.get_external_log_url(ti, 1)  # type: ignore[arg-type]
    return report


def main(argv: list[str]) -> int:
    if argv[:1] == ["options"]:
        result: Any = options(json.load(sys.stdin))
    elif argv[:1] == ["handler"] and len(argv) == 2:
        result = handler(argv[1])
    elif argv[:1] == ["both"] and len(argv) == 2:
        result = {"options": options(json.load(sys.stdin)), "handler": handler(argv[1])}
    else:
        sys.stderr.write(
            "usage: python -m tests.stack.probe options | handler LOGFILE | both LOGFILE\n"
        )
        return 2
    sys.stdout.write("PROBE " + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
