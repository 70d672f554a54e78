"""Where task logs live in Elasticsearch and how a task try's log_id is made, from Airflow's config.

Everything is read from the same ``[elasticsearch]`` / ``[elasticsearch_configs]`` settings the
provider's task handler uses (set by ``include/logging/task-logs.env``), so the search and the
links always agree with what the handler wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

LOGGING_DIR = Path(__file__).resolve().parents[2] / "include" / "logging"
INDEX_TEMPLATE_PATH = LOGGING_DIR / "index-template.json"
INDEX_TEMPLATE_NAME = "airflow-task-logs"
DEFAULT_LOG_ID_TEMPLATE = "{dag_id}-{task_id}-{run_id}-{map_index}-{try_number}"


@dataclass(frozen=True)
class LogSettings:
    """The remote task-log settings that search and links need."""

    host: str
    target_index: str
    index_patterns: str
    log_id_template: str
    offset_field: str
    frontend: str

    @classmethod
    def from_airflow_config(cls) -> LogSettings:
        """Read the settings through Airflow's configuration (airflow.cfg and ``AIRFLOW__*`` env)."""
        from airflow.providers.common.compat.sdk import conf

        return cls(
            host=conf.get("elasticsearch", "host", fallback="") or "",
            target_index=conf.get("elasticsearch", "target_index", fallback="airflow-logs")
            or "airflow-logs",
            index_patterns=conf.get("elasticsearch", "index_patterns", fallback="_all") or "_all",
            log_id_template=conf.get(
                "elasticsearch", "log_id_template", fallback=DEFAULT_LOG_ID_TEMPLATE
            )
            or DEFAULT_LOG_ID_TEMPLATE,
            offset_field=conf.get("elasticsearch", "offset_field", fallback="offset") or "offset",
            frontend=conf.get("elasticsearch", "frontend", fallback="") or "",
        )

    def log_id(
        self, dag_id: str, task_id: str, run_id: str, map_index: int, try_number: int
    ) -> str:
        """The log_id of one task try, rendered the way the provider renders it."""
        return self.log_id_template.format(
            dag_id=dag_id,
            task_id=task_id,
            run_id=run_id,
            map_index=map_index,
            try_number=try_number,
        )

    def frontend_url(self, log_id: str) -> str | None:
        """Kibana (or other frontend) address of one task try's log; None when no frontend is set."""
        if not self.frontend:
            return None
        scheme = "" if "://" in self.frontend else "https://"
        return scheme + self.frontend.format(log_id=quote(log_id))


def make_client(settings: LogSettings) -> Elasticsearch:
    """An ``elasticsearch.Elasticsearch`` client built exactly as the provider's log handler builds it.

    Same host, same ``[elasticsearch_configs]`` keyword arguments (timeouts, retries, TLS,
    credentials) and the same ``[elasticsearch] es_compat_with`` pinning of the
    ``compatible-with`` media type.
    """
    import elasticsearch
    from airflow.providers.elasticsearch._compat import apply_compat_with
    from airflow.providers.elasticsearch.log.es_task_handler import get_es_kwargs_from_config

    if not settings.host:
        raise ValueError(
            "[elasticsearch] host is not set; set AIRFLOW__ELASTICSEARCH__HOST to the cluster URL"
        )
    host = settings.host if "://" in settings.host else f"http://{settings.host}"
    kwargs: dict[str, Any] = get_es_kwargs_from_config()
    return apply_compat_with(elasticsearch.Elasticsearch(host, **kwargs))
