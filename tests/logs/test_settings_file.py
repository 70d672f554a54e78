"""include/logging: the one settings file and the index template agree with each other and with Airflow."""

from __future__ import annotations

import fnmatch
import json
import re

from tests.logs.harness import INDEX_TEMPLATE_FILE, LOGGING_ENV_FILE, logging_settings

PINNED_LOG_ID = "{dag_id}-{task_id}-{run_id}-{map_index}-{try_number}"


def test_env_file_reads_the_same_in_compose_kubectl_and_tests() -> None:
    for line in LOGGING_ENV_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        assert re.fullmatch(r"AIRFLOW__[A-Z_]+__[A-Z_]+", key), line
        assert "$" not in value and not value.startswith(("'", '"')) and value == value.strip(), (
            line
        )
        assert " #" not in value, line


def test_pinned_and_required_settings() -> None:
    settings = logging_settings()
    assert settings["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "True"
    assert settings["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"] == "elasticsearch://"
    assert settings["AIRFLOW__LOGGING__DELETE_LOCAL_LOGS"] == "False"
    assert settings["AIRFLOW__ELASTICSEARCH__WRITE_TO_ES"] == "True"
    assert settings["AIRFLOW__ELASTICSEARCH__JSON_FORMAT"] == "True"
    assert settings["AIRFLOW__ELASTICSEARCH__LOG_ID_TEMPLATE"] == PINNED_LOG_ID
    assert settings["AIRFLOW__ELASTICSEARCH__INDEX_PATTERNS"] != "_all"
    assert re.findall(r"\{[^}]*\}", settings["AIRFLOW__ELASTICSEARCH__FRONTEND"]) == ["{log_id}"]


def test_index_template_covers_the_written_and_read_indices() -> None:
    settings = logging_settings()
    template = json.loads(INDEX_TEMPLATE_FILE.read_text(encoding="utf-8"))
    patterns = template["index_patterns"]
    assert any(
        fnmatch.fnmatchcase(settings["AIRFLOW__ELASTICSEARCH__TARGET_INDEX"], p) for p in patterns
    )
    assert settings["AIRFLOW__ELASTICSEARCH__INDEX_PATTERNS"].split(",") == patterns
    properties = template["template"]["mappings"]["properties"]
    assert properties[settings["AIRFLOW__ELASTICSEARCH__OFFSET_FIELD"]] == {"type": "long"}
    assert properties["log_id"] == {"type": "keyword"}
    assert properties["event"] == {"type": "text"}


def test_logging_config_class_keeps_the_remote_handler() -> None:
    from operators.logsearch import logging_config

    module_path, _, attribute = logging_settings()[
        "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS"
    ].rpartition(".")
    assert module_path == logging_config.__name__
    config = getattr(logging_config, attribute)
    assert config["loggers"]["elastic_transport"]["level"] == "ERROR"
    assert hasattr(logging_config, "REMOTE_TASK_LOG")
    assert hasattr(logging_config, "DEFAULT_REMOTE_CONN_ID")
