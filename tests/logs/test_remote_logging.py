"""Real task runs with remote logging to the Elasticsearch stand-in (see conftest.Scenarios).

Each task ran through Airflow's supervisor with the settings of include/logging/task-logs.env;
the log file was uploaded by the provider's ElasticsearchRemoteLogIO when the task ended, and
read back through the api-server's log route, as the UI's log tab does.
"""

from __future__ import annotations

import re

import pytest

from tests.logs.conftest import TOO_LARGE_BYTES, Scenarios
from tests.logs.dags.log_scenarios import BIG_LINE_BYTES, FLOOD_LINES, MULTIBYTE

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

UPLOAD_ERROR = "Unable to insert logs into Elasticsearch"


def _ui_events(lines: list[dict[str, object]]) -> list[object]:
    """Events of the log route's stream without its "log message source" header group."""
    events = [line.get("event") for line in lines]
    assert events[0] == "::group::Log message source details", events[:3]
    end = events.index("::endgroup::")
    return events[end + 1 :]


def test_log_lands_under_its_log_id_with_offsets_in_write_order(scenarios: Scenarios) -> None:
    run = scenarios.runs["say_hello"]
    assert run.state == "success"
    assert run.log_id == f"log_scenarios-say_hello-{run.run_id}--1-1"
    local = run.local_lines()
    docs = scenarios.docs("say_hello")

    assert [doc["offset"] for doc in docs] == list(range(1, len(local) + 1))
    assert all(doc["log_id"] == run.log_id for doc in docs)
    for line, doc in zip(local, docs, strict=True):
        assert {k: v for k, v in doc.items() if k not in ("log_id", "offset")} == line
    assert scenarios.es.index_names() == ["airflow-task-logs"]
    properties = scenarios.es.mappings("airflow-task-logs")["properties"]
    assert properties["log_id"] == {"type": "keyword"}
    assert properties["offset"] == {"type": "long"}


def test_ui_log_route_reads_the_log_back_in_order(scenarios: Scenarios) -> None:
    run = scenarios.runs["say_hello"]
    events = _ui_events(scenarios.read_back["say_hello"])

    assert events == [line["event"] for line in run.local_lines()]
    steps = [e for e in events if isinstance(e, str) and e.startswith("rollout step=")]
    assert steps == [
        f"rollout step={n} service=hello-api site=site-a release=1.4.2" for n in range(1, 21)
    ]
    assert "plain stdout line from the task" in events
    assert "traffic restored service=hello-api site=site-a weight=50" in events


def test_failing_task_log_carries_its_traceback(scenarios: Scenarios) -> None:
    run = scenarios.runs["fail_loudly"]
    assert run.state == "failed"
    failures = [line for line in scenarios.read_back["fail_loudly"] if line.get("error_detail")]
    assert len(failures) == 1
    failure = failures[0]
    assert failure["event"] == "Task failed with exception"
    assert failure["level"] == "error"
    (detail,) = failure["error_detail"]
    assert detail["exc_type"] == "ValueError"
    assert detail["exc_value"] == "the deploy went wrong on purpose service=hello-api"
    frames = [(frame["filename"].rsplit("/", 1)[-1], frame["name"]) for frame in detail["frames"]]
    assert ("log_scenarios.py", "fail_loudly") in frames
    stored = [doc for doc in scenarios.docs("fail_loudly") if doc.get("error_detail")]
    assert stored and stored[0]["error_detail"] == failure["error_detail"]


def test_fifty_thousand_lines_all_land_once_and_in_order(scenarios: Scenarios) -> None:
    run = scenarios.runs["flood"]
    assert run.state == "success"
    docs = scenarios.docs("flood")
    local = run.local_lines()

    assert len(docs) == len(local)
    assert [doc["offset"] for doc in docs] == list(range(1, len(local) + 1))
    numbers = [
        int(match.group(1))
        for doc in docs
        if (match := re.fullmatch(r"flood line (\d{5}) service=hello-api", str(doc.get("event"))))
    ]
    assert numbers == list(range(1, FLOOD_LINES + 1))
    bulk_calls = scenarios.es.requests("_bulk", body_contains=run.log_id)
    assert len(bulk_calls) >= FLOOD_LINES // 500
    assert all(call["status"] == 200 for call in bulk_calls)


def test_multibyte_text_a_megabyte_line_and_invalid_bytes_survive(scenarios: Scenarios) -> None:
    run = scenarios.runs["hard_text"]
    assert run.state == "success"
    stored = [str(doc.get("event")) for doc in scenarios.docs("hard_text")]
    read = [str(event) for event in _ui_events(scenarios.read_back["hard_text"])]

    for events in (stored, read):
        assert f"multibyte: {MULTIBYTE}" in events
        assert f"stdout multibyte: {MULTIBYTE}" in events
        assert "pod said: \ufffd\ufffd\ufffd( then went on" in events
        assert any(
            e.startswith("surrogates: caf") and len(e) == len("surrogates: caf") + 1 for e in events
        )
        big = [e for e in events if e.startswith("BBBB")]
        assert big == ["B" * BIG_LINE_BYTES]
        assert "after the big line service=hello-api" in events
    assert stored == [str(line["event"]) for line in run.local_lines()]
    assert read == stored


@pytest.mark.parametrize(
    ("task_id", "reason"),
    [
        ("upload_while_es_down", "Connection error"),
        ("upload_while_es_busy", "ApiError(429"),
        ("upload_too_large", "ApiError(413"),
    ],
)
def test_failed_upload_keeps_result_and_local_log_and_is_reported_once(
    scenarios: Scenarios, task_id: str, reason: str
) -> None:
    run = scenarios.runs[task_id]
    assert (run.exit_code, run.state) == (0, "success")
    assert scenarios.docs(task_id) == []
    local = run.local_lines()
    assert any("service=hello-api" in str(line.get("event")) for line in local)

    output = run.supervisor_output()
    errors = [line for line in output.splitlines() if UPLOAD_ERROR in line]
    assert len(errors) == 1, errors
    assert reason in errors[0]
    assert "[error" in errors[0]
    assert "Retrying request" not in output
    attempts = scenarios.es.requests("_bulk", body_contains=run.log_id)
    assert attempts and all(call["status"] != 200 for call in attempts)


def test_too_large_upload_is_refused_by_size(scenarios: Scenarios) -> None:
    run = scenarios.runs["upload_too_large"]
    (attempt,) = scenarios.es.requests("_bulk", body_contains=run.log_id)
    assert attempt["status"] == 413
    assert attempt["bytes_in"] > TOO_LARGE_BYTES


def test_one_429_is_retried_and_the_log_lands(scenarios: Scenarios) -> None:
    run = scenarios.runs["upload_once_throttled"]
    attempts = [call["status"] for call in scenarios.es.requests("_bulk", body_contains=run.log_id)]
    assert attempts == [429, 200]
    assert len(scenarios.docs("upload_once_throttled")) == len(run.local_lines())
    assert UPLOAD_ERROR not in run.supervisor_output()


def test_every_request_negotiates_the_pinned_compatibility(scenarios: Scenarios) -> None:
    accepts = {call["accept"] for call in scenarios.es.requests("_bulk")}
    assert accepts == {"application/vnd.elasticsearch+json; compatible-with=9"}


def test_extra_link_points_at_kibana_with_the_log_id(scenarios: Scenarios) -> None:
    run = scenarios.runs["say_hello"]
    links = scenarios.home.extra_links(run)
    assert links["status"] == 200, links
    url = links["body"]["extra_links"]["Task log (Kibana)"]
    assert url.startswith("http://localhost:5601/app/discover#/")
    assert f'log_id:"log_scenarios-say_hello-{run.run_id}--1-1"' in url
