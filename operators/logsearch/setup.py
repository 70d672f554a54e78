"""``python -m operators.logsearch.setup``: prepare Elasticsearch (and Kibana) for task logs.

Installs ``include/logging/index-template.json`` as the index template ``airflow-task-logs``
(``log_id`` keyword, ``offset`` long, other fields kept but not indexed), creates the target
index if it is missing so it gets that mapping before the first write, and, with
``--kibana-url``, creates the Kibana data view that the ``[elasticsearch] frontend`` link
opens. Every step can be repeated safely. The cluster is Airflow's ``[elasticsearch] host``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from operators.logsearch.settings import INDEX_TEMPLATE_NAME, INDEX_TEMPLATE_PATH, LogSettings

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

log = logging.getLogger(__name__)

DATA_VIEW_ID = "airflow-task-logs"


def index_template() -> dict[str, Any]:
    """The index template shipped in include/logging."""
    template: dict[str, Any] = json.loads(INDEX_TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template


def install_index_template(client: Elasticsearch, settings: LogSettings) -> None:
    """Put the index template and make sure the target index exists with its mapping."""
    import fnmatch

    template = index_template()
    patterns = template["index_patterns"]
    if not any(fnmatch.fnmatchcase(settings.target_index, p) for p in patterns):
        raise ValueError(
            f"[elasticsearch] target_index {settings.target_index!r} is not covered by the template's "
            f"index_patterns {patterns}; fix include/logging/index-template.json or the setting"
        )
    client.indices.put_index_template(name=INDEX_TEMPLATE_NAME, **template)
    log.info("index template installed name=%s patterns=%s", INDEX_TEMPLATE_NAME, patterns)
    if not client.indices.exists(index=settings.target_index):
        client.indices.create(index=settings.target_index)
        log.info("index created index=%s", settings.target_index)


def create_data_view(kibana_url: str, settings: LogSettings, *, timeout: float = 10.0) -> None:
    """Create (or overwrite) the Kibana data view over the task-log indices."""
    import requests

    answer = requests.post(
        kibana_url.rstrip("/") + "/api/data_views/data_view",
        headers={"kbn-xsrf": "true", "Content-Type": "application/json"},
        json={
            "data_view": {
                "id": DATA_VIEW_ID,
                "name": "Airflow task logs",
                "title": settings.index_patterns,
                "timeFieldName": "timestamp",
            },
            "override": True,
        },
        timeout=timeout,
    )
    if answer.status_code >= 300:
        raise RuntimeError(
            f"Kibana refused the data view: {answer.status_code} {answer.text[:300]}"
        )
    log.info("Kibana data view ready id=%s title=%s", DATA_VIEW_ID, settings.index_patterns)


def _with_retries(step: Any, what: str, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            step()
            return
        except Exception as err:
            if time.monotonic() >= deadline:
                raise
            log.warning("%s not ready yet, retrying reason=%s", what, err)
            time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m operators.logsearch.setup", description=__doc__
    )
    parser.add_argument(
        "--kibana-url", help="also create the Kibana data view, e.g. http://kibana:5601"
    )
    parser.add_argument(
        "--skip-template", action="store_true", help="leave the index template alone"
    )
    parser.add_argument(
        "--wait", type=float, default=120.0, help="seconds to keep retrying while a server starts"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    from operators.logsearch.settings import make_client

    settings = LogSettings.from_airflow_config()
    if not args.skip_template:
        client = make_client(settings)
        _with_retries(lambda: install_index_template(client, settings), "Elasticsearch", args.wait)
    if args.kibana_url:
        _with_retries(lambda: create_data_view(args.kibana_url, settings), "Kibana", args.wait)
    return 0


if __name__ == "__main__":
    sys.exit(main())
