"""Airflow's default logging configuration, with the Elasticsearch client's retry chatter left out.

Used as ``[logging] logging_config_class = operators.logsearch.logging_config.LOGGING_CONFIG``
(set in ``include/logging/task-logs.env``). It is Airflow's own ``DEFAULT_LOGGING_CONFIG``, which
already wires the Elasticsearch task handler when remote logging is on, plus one logger level:
the ``elastic_transport`` client logs each retry as a warning with a full traceback and each
request at info, so with Elasticsearch down one upload printed three tracebacks. At ERROR, a
failed upload shows as the provider's single error line naming the reason.

``[logging] namespace_levels`` cannot do this in Airflow 3.3: it only reaches structlog loggers,
not standard-library ones such as ``elastic_transport``.

Airflow finds the remote log handler next to the logging configuration, so ``REMOTE_TASK_LOG``
and ``DEFAULT_REMOTE_CONN_ID`` are re-exported from Airflow's default settings module.
"""

from __future__ import annotations

import copy
from typing import Any

from airflow.config_templates.airflow_local_settings import (
    DEFAULT_LOGGING_CONFIG,
    DEFAULT_REMOTE_CONN_ID,
    REMOTE_TASK_LOG,
)

QUIET_LOGGERS = {"elastic_transport": "ERROR"}

LOGGING_CONFIG: dict[str, Any] = copy.deepcopy(DEFAULT_LOGGING_CONFIG)
for _name, _level in QUIET_LOGGERS.items():
    LOGGING_CONFIG["loggers"][_name] = {"level": _level, "propagate": True}

__all__ = ["DEFAULT_REMOTE_CONN_ID", "LOGGING_CONFIG", "REMOTE_TASK_LOG"]
