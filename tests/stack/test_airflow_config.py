"""Every Airflow setting the stack sets is a real option, and the logging ones really work.

The environment of an Airflow container is rebuilt from docker-compose.yaml (its ``env_file``,
then its ``environment``, interpolated with .env.example) and handed to child processes that
load Airflow's configuration and logging exactly as a container would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.es.testing import run_es
from tests.stack.compose import (
    ROOT,
    load_compose,
    read_env_file,
    service_env_files,
    service_environment,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

_OPTION = re.compile(r"^AIRFLOW__([A-Z0-9_.]+?)__([A-Z0-9_]+)$")


def container_env(service: str = "airflow-worker") -> dict[str, str]:
    """What ``docker compose`` would put in the service's environment (Airflow's keys only)."""
    spec = load_compose()["services"][service]
    env: dict[str, str] = {}
    for path in service_env_files(spec):
        env.update(read_env_file(path))
    env.update(service_environment(spec))
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        for key, value in re.findall(r"(AIRFLOW__[A-Z0-9_]+)=(\S+)", line):
            env.setdefault(key, value)
    return env


def _child_env(overrides: dict[str, str], home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIRFLOW") and k != "PYTEST_CURRENT_TEST"
    }
    env.update(overrides)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "PYTHONPATH": str(ROOT),
            # Keep the child off the stack's MySQL and out of /opt/airflow; nothing else changes.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        }
    )
    return env


def _probe(args: list[str], env: dict[str, str], stdin: str = "") -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "tests.stack.probe", *args],
        input=stdin,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0 and lines, (
        f"probe failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return json.loads(lines[-1].removeprefix("PROBE "))


def _helm_config_options() -> dict[str, str]:
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text(encoding="utf-8"))
    found = {}
    for section, options in values["config"].items():
        for key, value in options.items():
            if value is not None:
                found[f"AIRFLOW__{section.upper()}__{key.upper()}"] = str(value)
    for item in values.get("env", []):
        found[item["name"]] = item["value"]
    return found


MISSPELT = [
    ["elasticsearch", "log_id_templat"],
    ["elasticsearch_configs", "timeout"],
    ["core", "executer"],
]


def _stack_settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    for service in ("airflow-init", "airflow-worker", "airflow-apiserver", "kibana-setup"):
        settings.update(
            {k: v for k, v in container_env(service).items() if k.startswith("AIRFLOW__")}
        )
    return settings


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One child process: option check of every key, then the task-log handlers against a stand-in."""
    home = tmp_path_factory.mktemp("stack-probe")
    keys = sorted(set(_stack_settings()) | set(_helm_config_options()))
    pairs = []
    for key in keys:
        match = _OPTION.match(key)
        assert match, f"{key} is not AIRFLOW__<SECTION>__<KEY>"
        pairs.append([match.group(1).lower(), match.group(2).lower()])
    log_file = home / "attempt=1.log"
    lines = [
        {"timestamp": "2026-12-04T10:00:00.000000Z", "level": "info", "event": f"probe line {n}"}
        for n in range(1, 4)
    ]
    log_file.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    worker = container_env("airflow-worker")
    with run_es() as es:
        url = es.url
        report = _probe(
            ["both", str(log_file)],
            _child_env({**worker, "AIRFLOW__ELASTICSEARCH__HOST": url}, home),
            json.dumps(pairs + MISSPELT),
        )
        stored = es.documents("airflow-task-logs")
        accepts = {call["accept"] for call in es.requests()}
    return {
        "keys": keys,
        "options": report["options"][: len(pairs)],
        "misspelt": report["options"][len(pairs) :],
        "handler": report["handler"],
        "url": url,
        "stored": stored,
        "accepts": accepts,
        "worker": worker,
    }


def test_every_airflow_setting_is_a_real_option(probed: dict[str, Any]) -> None:
    assert len(probed["keys"]) > 25
    unknown = [f"[{a['section']}] {a['key']}" for a in probed["options"] if not a["known"]]
    assert not unknown, f"not Airflow or provider options: {unknown}"
    settings = _stack_settings()
    by_key = {
        f"AIRFLOW__{a['section'].upper()}__{a['key'].upper()}": a["value"]
        for a in probed["options"]
    }
    for key in (
        "AIRFLOW__ELASTICSEARCH__LOG_ID_TEMPLATE",
        "AIRFLOW__ELASTICSEARCH__INDEX_PATTERNS",
        "AIRFLOW__CORE__EXECUTOR",
    ):
        assert by_key[key] == settings[key], key


def test_the_option_check_rejects_misspelt_keys(probed: dict[str, Any]) -> None:
    assert [a["known"] for a in probed["misspelt"]] == [False, False, False]


def test_stack_logging_settings_bring_up_the_es_handler_against_the_standin(
    probed: dict[str, Any],
) -> None:
    report, settings = probed["handler"], probed["worker"]
    assert report["reader_is_es"], report
    assert report["remote_is_es"], report
    assert report["host"] == probed["url"]
    assert report["write_to_es"] is True
    assert report["target_index"] == settings["AIRFLOW__ELASTICSEARCH__TARGET_INDEX"]
    assert report["index_patterns"] == settings["AIRFLOW__ELASTICSEARCH__INDEX_PATTERNS"]
    assert (
        report["log_id_template"]
        == report["reader_log_id_template"]
        == settings["AIRFLOW__ELASTICSEARCH__LOG_ID_TEMPLATE"]
    )
    assert report["server_version"] == "9.5.1"
    assert report["read_back"] == ["probe line 1", "probe line 2", "probe line 3"]
    assert [(doc["log_id"], doc["offset"]) for doc in probed["stored"]] == [
        ("stack_probe-probe-manual__probe--1-1", n) for n in (1, 2, 3)
    ]
    assert probed["accepts"] == {"application/vnd.elasticsearch+json; compatible-with=9"}
    assert 'log_id:"stack_probe-probe-manual__probe--1-1"' in report["external_url"]
