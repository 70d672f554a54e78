"""The Elasticsearch stand-in, driven through the real elasticsearch-py client."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import elasticsearch
import pytest
import requests
from elasticsearch import helpers

from operators.logsearch.setup import index_template
from sandbox.es.testing import RunningEs, run_es
from tests.logs.harness import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

COMPAT_9 = "application/vnd.elasticsearch+json; compatible-with=9"


@pytest.fixture
def es() -> Iterator[RunningEs]:
    with run_es() as node:
        node.client().indices.put_index_template(name="airflow-task-logs", **index_template())
        yield node


def _lines(
    es: RunningEs,
    count: int,
    *,
    log_id: str = "dag-task-run--1-1",
    index: str = "airflow-task-logs",
) -> None:
    actions = [
        {
            "_index": index,
            "_source": {
                "log_id": log_id,
                "offset": number,
                "timestamp": f"2026-12-04T10:{number // 60 % 60:02d}:{number % 60:02d}.000000Z",
                "event": f"line {number} service=hello-api site=site-{'a' if number % 2 else 'b'}",
                "level": "info",
            },
        }
        for number in range(1, count + 1)
    ]
    helpers.bulk(es.client(), actions)


def test_root_answers_like_elasticsearch_9(es: RunningEs) -> None:
    answer = requests.get(es.url, headers={"Accept": COMPAT_9}, timeout=5)
    assert answer.headers["X-Elastic-Product"] == "Elasticsearch"
    assert answer.headers["Content-Type"] == "application/vnd.elasticsearch+json;compatible-with=9"
    assert answer.json()["version"]["number"] == "9.5.1"
    assert es.client().info()["tagline"] == "You Know, for Search"


def test_index_template_maps_indices_created_by_the_first_write(es: RunningEs) -> None:
    _lines(es, 3)
    client = es.client()
    mapping = client.indices.get_mapping(index="airflow-task-logs")["airflow-task-logs"]["mappings"]
    assert mapping["properties"]["log_id"] == {"type": "keyword"}
    assert mapping["properties"]["offset"] == {"type": "long"}
    assert client.indices.exists(index="airflow-task-logs")
    assert not client.indices.exists(index="other")
    with pytest.raises(elasticsearch.NotFoundError):
        client.search(index="other", query={"match_all": {}})
    assert client.search(index="other*", query={"match_all": {}})["hits"]["total"]["value"] == 0


def test_mapping_types_are_enforced_on_write(es: RunningEs) -> None:
    result = es.client().bulk(
        operations=[
            {"index": {"_index": "airflow-task-logs"}},
            {"log_id": "x", "offset": "not a number"},
        ]
    )
    assert result["errors"] is True
    assert result["items"][0]["index"]["status"] == 400
    assert result["items"][0]["index"]["error"]["type"] == "document_parsing_exception"


def test_reader_query_pages_by_offset_in_order(es: RunningEs) -> None:
    _lines(es, 2500)
    _lines(es, 10, log_id="someone-else--1-1")
    client = es.client()
    seen: list[int] = []
    offset = 0
    while True:
        response = client.search(
            index="airflow-task-logs*",
            query={
                "bool": {
                    "filter": [{"range": {"offset": {"gt": offset}}}],
                    "must": [{"match_phrase": {"log_id": "dag-task-run--1-1"}}],
                }
            },
            sort=["offset"],
            size=1000,
            from_=0,
            source_includes=["offset", "event"],
        )
        hits = response["hits"]["hits"]
        if not hits:
            break
        assert set(hits[0]["_source"]) == {"offset", "event"}
        seen.extend(hit["_source"]["offset"] for hit in hits)
        offset = hits[-1]["_source"]["offset"]
    assert seen == list(range(1, 2501))


def test_search_after_walks_every_hit_once(es: RunningEs) -> None:
    _lines(es, 1200)
    client = es.client()
    cursor: list[Any] | None = None
    seen: list[int] = []
    while True:
        extra = {"search_after": cursor} if cursor else {}
        hits = client.search(
            index="airflow-task-logs",
            sort=[{"timestamp": "desc"}, {"offset": "desc"}],
            size=500,
            **extra,
        )["hits"]["hits"]
        if not hits:
            break
        seen.extend(hit["_source"]["offset"] for hit in hits)
        cursor = hits[-1]["sort"]
    assert seen == sorted(range(1, 1201), key=lambda n: (n // 60 % 60, n % 60, n), reverse=True)


def test_phrases_terms_and_bool(es: RunningEs) -> None:
    _lines(es, 20)
    helpers.bulk(
        es.client(),
        [
            {
                "_index": "airflow-task-logs",
                "_source": {"log_id": "cjk", "offset": 1, "event": "部署完成 🚀 site=site-b"},
            }
        ],
    )
    client = es.client()

    def count(query: dict[str, Any]) -> int:
        return int(client.count(index="airflow-task-logs", query=query)["count"])

    assert count({"match_phrase": {"event": "service=hello-api site=site-a"}}) == 10
    assert count({"match_phrase": {"event": "site=site-a service=hello-api"}}) == 0
    assert count({"match_phrase": {"event": "部署"}}) == 1
    assert count({"match_phrase": {"event": "署部"}}) == 0
    assert count({"term": {"log_id": "cjk"}}) == 1
    assert count({"term": {"log_id": "CJK"}}) == 0
    assert count({"terms": {"log_id": ["cjk", "dag-task-run--1-1"]}}) == 21
    assert count({"range": {"offset": {"gte": 5, "lt": 8}}}) == 3
    assert (
        count(
            {"bool": {"must_not": [{"match": {"event": {"query": "site-a", "operator": "and"}}}]}}
        )
        == 11
    )
    assert count({"bool": {"must_not": [{"match": {"event": "site-a"}}]}}) == 0
    assert count({"bool": {"should": [{"term": {"offset": 1}}, {"term": {"offset": 2}}]}}) == 3
    assert count({"wildcard": {"log_id": {"value": "dag-*--1-1"}}}) == 20
    with pytest.raises(elasticsearch.BadRequestError, match="parsing_exception"):
        client.search(index="airflow-task-logs", query={"fuzzy_unknown": {"event": "x"}})


def test_limits_of_a_real_node_apply(es: RunningEs) -> None:
    _lines(es, 5)
    client = es.client()
    with pytest.raises(elasticsearch.BadRequestError, match="Result window is too large"):
        client.search(index="airflow-task-logs", size=10_001)
    with pytest.raises(elasticsearch.BadRequestError, match="Text fields are not optimised"):
        client.search(index="airflow-task-logs", sort=["event"])


def test_collapse_keeps_one_hit_per_log_id(es: RunningEs) -> None:
    _lines(es, 5, log_id="a")
    _lines(es, 5, log_id="b")
    hits = es.client().search(
        index="airflow-task-logs", collapse={"field": "log_id"}, sort=[{"log_id": "asc"}], size=10
    )["hits"]["hits"]
    assert [hit["fields"]["log_id"] for hit in hits] == [["a"], ["b"]]


def test_down_slow_and_throttled_reach_the_client_as_on_a_real_cluster(es: RunningEs) -> None:
    client = es.client(max_retries=0, request_timeout=0.5)
    es.set_fault("down", times=1)
    with pytest.raises(elasticsearch.ConnectionError):
        client.info()
    es.set_fault("slow", delay=1.5, times=1)
    with pytest.raises(elasticsearch.ConnectionTimeout):
        client.info()
    es.set_fault("status", status=429, path="_bulk", times=1, retry_after=2)
    with pytest.raises(elasticsearch.ApiError) as raised:
        client.bulk(
            operations=[{"index": {"_index": "airflow-task-logs"}}, {"log_id": "x", "offset": 1}]
        )
    assert raised.value.meta.status == 429
    assert raised.value.meta.headers["Retry-After"] == "2"
    assert client.info()["cluster_name"] == "sandbox"
    retried = es.client(max_retries=2)
    es.set_fault("status", status=429, path="_bulk", times=1)
    assert (
        retried.bulk(
            operations=[{"index": {"_index": "airflow-task-logs"}}, {"log_id": "y", "offset": 1}]
        )["errors"]
        is False
    )
    assert [r["status"] for r in es.requests("_bulk")][-2:] == [429, 200]


def test_bodies_over_the_limit_get_413(es: RunningEs) -> None:
    es.limit_body(10_000)
    client = es.client(max_retries=0)
    with pytest.raises(elasticsearch.ApiError) as raised:
        client.bulk(
            operations=[{"index": {"_index": "airflow-task-logs"}}, {"event": "x" * 20_000}]
        )
    assert raised.value.meta.status == 413
    assert (
        client.bulk(operations=[{"index": {"_index": "airflow-task-logs"}}, {"event": "small"}])[
            "errors"
        ]
        is False
    )


def test_admin_endpoint_steers_faults_over_http(es: RunningEs) -> None:
    put = requests.put(
        f"{es.url}/_sandbox/faults",
        json={"mode": "status", "status": 503, "times": 1, "max_body_bytes": 100},
        timeout=5,
    )
    assert put.status_code == 200
    assert put.json()["max_body_bytes"] == 100
    assert requests.get(es.url, timeout=5).status_code == 503
    assert requests.get(es.url, timeout=5).status_code == 200
    assert requests.delete(f"{es.url}/_sandbox/faults", timeout=5).json() == {
        "faults": [],
        "max_body_bytes": None,
    }
    bad = requests.put(f"{es.url}/_sandbox/faults", json={"mode": "explode"}, timeout=5)
    assert bad.status_code == 400


def test_compat_with_decides_which_server_majors_the_client_can_talk_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What ``[elasticsearch] es_compat_with`` does: pin the ``compatible-with`` media type."""
    from airflow.providers.elasticsearch._compat import apply_compat_with

    with run_es(version="8.19.3") as es8:
        with pytest.raises(elasticsearch.BadRequestError, match="media_type_header_exception"):
            es8.client().info()
        monkeypatch.setenv("AIRFLOW__ELASTICSEARCH__ES_COMPAT_WITH", "8")
        assert apply_compat_with(es8.client()).info()["version"]["number"] == "8.19.3"
        assert (
            es8.requests()[-1]["accept"] == "application/vnd.elasticsearch+json; compatible-with=8"
        )
    with run_es() as es9:
        monkeypatch.setenv("AIRFLOW__ELASTICSEARCH__ES_COMPAT_WITH", "9")
        assert apply_compat_with(es9.client()).info()["version"]["number"] == "9.5.1"
        monkeypatch.setenv("AIRFLOW__ELASTICSEARCH__ES_COMPAT_WITH", "7")
        with pytest.raises(elasticsearch.BadRequestError, match="media_type_header_exception"):
            apply_compat_with(es9.client()).info()


def test_command_line_prints_its_url_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.es", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert ready["version"] == "9.5.1"
        answer = requests.get(ready["url"], timeout=5)
        assert answer.headers["X-Elastic-Product"] == "Elasticsearch"
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)
    assert process.returncode == 0
