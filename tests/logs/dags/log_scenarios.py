"""Tasks whose logs the remote-logging tests check: ordinary, failing, huge and hard to encode."""

from __future__ import annotations

import logging
import sys

import pendulum
from airflow.sdk import dag, task

log = logging.getLogger("airflow.task.operators.log_scenarios")

FLOOD_LINES = 50_000
MULTIBYTE = "部署完成 site=site-b 服务已上线 🚀✅ café"
INVALID_BYTES = b"pod said: \xff\xfe\xc3( then went on\n"
BIG_LINE_BYTES = 1024 * 1024


@dag(
    dag_id="log_scenarios",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
    doc_md="Tasks whose logs the remote-logging tests read back from Elasticsearch.",
)
def log_scenarios() -> None:
    @task
    def say_hello() -> None:
        for step in range(1, 21):
            log.info("rollout step=%d service=hello-api site=site-a release=1.4.2", step)
        print("plain stdout line from the task")
        log.warning("traffic restored service=hello-api site=site-a weight=50")

    @task
    def fail_loudly() -> None:
        log.info("about to fail service=hello-api site=site-b")
        raise ValueError("the deploy went wrong on purpose service=hello-api")

    @task
    def flood() -> None:
        for number in range(1, FLOOD_LINES + 1):
            print(f"flood line {number:05d} service=hello-api")

    @task
    def hard_text() -> None:
        log.info("multibyte: %s", MULTIBYTE)
        print("stdout multibyte: " + MULTIBYTE)
        sys.stdout.flush()
        sys.stdout.buffer.write(INVALID_BYTES)
        sys.stdout.buffer.flush()
        log.info("surrogates: %s", b"caf\xe9".decode("utf-8", "surrogateescape"))
        print("B" * BIG_LINE_BYTES)
        log.info("after the big line service=hello-api")

    @task
    def upload_while_es_down() -> None:
        log.info("work done while Elasticsearch is down service=hello-api")

    @task
    def upload_while_es_busy() -> None:
        log.info("work done while Elasticsearch answers 429 service=hello-api")

    @task
    def upload_once_throttled() -> None:
        log.info("work done while Elasticsearch answers 429 once service=hello-api")

    @task
    def upload_too_large() -> None:
        log.info("a log bigger than Elasticsearch accepts service=hello-api")
        print("L" * BIG_LINE_BYTES)

    say_hello()
    fail_loudly()
    flood()
    hard_text()
    upload_while_es_down()
    upload_while_es_busy()
    upload_once_throttled()
    upload_too_large()


log_scenarios()
