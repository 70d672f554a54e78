"""Log search across runs, its command line, the Kibana link and the index set-up."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import helpers

from operators.logsearch.search import LogQuery, LogSearch, LogSearchError
from operators.logsearch.settings import LogSettings
from operators.logsearch.setup import create_data_view, install_index_template
from sandbox.es.testing import RunningEs, run_es
from tests.logs.conftest import RUN_ID, Scenarios
from tests.logs.harness import ROOT, AirflowHome, log_settings, logging_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LINES: list[tuple[str, str, str, str | None]] = [
    # (log_id, timestamp, event, run_id on the line)
    ("release-deploy_site_b-run1--1-1", "2026-12-01T10:00:01Z", "::group::Pre Execute", None),
    (
        "release-deploy_site_b-run1--1-1",
        "2026-12-01T10:00:02Z",
        "deploy start service=hello-api site=site-b release=1.4.2",
        "run1",
    ),
    ("release-deploy_site_b-run1--1-1", "2026-12-01T10:00:03Z", "pod: rollout done", "run1"),
    (
        "release-deploy_site_a-run1--1-1",
        "2026-12-01T10:01:01Z",
        "deploy start service=hello-api site=site-a",
        "run1",
    ),
    (
        "release-deploy_site_a-run1--1-1",
        "2026-12-01T10:01:02Z",
        "release=1.4.2 image digest sha256:abc",
        "run1",
    ),
    ("release-deploy_site_a-run1--1-1", "2026-12-01T10:01:03Z", "pod: rollout done", "run1"),
    (
        "release-deploy_site_a-run2--1-1",
        "2026-12-02T10:01:01Z",
        "deploy start service=hello-api site=site-a",
        "run2",
    ),
    (
        "release-deploy_site_a-run2--1-1",
        "2026-12-02T10:01:02Z",
        "release=1.5.0 image digest sha256:def",
        "run2",
    ),
    (
        "release-deploy_site_a-run2--1-1",
        "2026-12-02T10:01:03Z",
        "pod: rollout failed Traceback",
        "run2",
    ),
    (
        "release-deploy_site_a-run3--1-1",
        "2026-12-03T10:01:01Z",
        "deploy start service=orders-api site=site-a",
        "run3",
    ),
    ("release-deploy_site_a-run3--1-1", "2026-12-03T10:01:02Z", "pod: rollout done", "run3"),
]


def _seed(es: RunningEs) -> None:
    actions = []
    offsets: dict[str, int] = {}
    for log_id, timestamp, event, run_id in LINES:
        offsets[log_id] = offsets.get(log_id, 0) + 1
        source: dict[str, Any] = {
            "log_id": log_id,
            "offset": offsets[log_id],
            "timestamp": timestamp,
            "event": event,
            "level": "info",
        }
        if run_id:
            source["run_id"] = run_id
        actions.append({"_index": "airflow-task-logs", "_source": source})
    helpers.bulk(es.client(), actions)


@pytest.fixture(scope="module")
def seeded() -> Iterator[tuple[RunningEs, LogSearch]]:
    with run_es() as es:
        settings = log_settings(es.url)
        install_index_template(es.client(), settings)
        _seed(es)
        yield es, LogSearch(es.client(), settings)


def _found(search: LogSearch, **query: Any) -> list[tuple[str, str]]:
    return [(hit.log_id, hit.event) for hit in search.search(LogQuery(**query))]


def test_service_and_site_scope_with_text(seeded: tuple[RunningEs, LogSearch]) -> None:
    _, search = seeded
    assert _found(search, service="hello-api", site="site-a", text="rollout") == [
        ("release-deploy_site_a-run2--1-1", "pod: rollout failed Traceback"),
        ("release-deploy_site_a-run1--1-1", "pod: rollout done"),
    ]


def test_pairs_may_sit_on_different_lines_of_one_task_log(
    seeded: tuple[RunningEs, LogSearch],
) -> None:
    _, search = seeded
    found = _found(search, service="hello-api", release="1.4.2", text="rollout done")
    assert found == [
        ("release-deploy_site_a-run1--1-1", "pod: rollout done"),
        ("release-deploy_site_b-run1--1-1", "pod: rollout done"),
    ]


def test_run_id_narrows_to_that_run(seeded: tuple[RunningEs, LogSearch]) -> None:
    _, search = seeded
    assert [log_id for log_id, _ in _found(search, run_id="run1", site="site-b")] == [
        "release-deploy_site_b-run1--1-1"
    ]
    lines = _found(search, run_id="run1", limit=10)
    assert len(lines) == 6
    assert ("release-deploy_site_b-run1--1-1", "::group::Pre Execute") in lines


def test_text_alone_searches_every_log(seeded: tuple[RunningEs, LogSearch]) -> None:
    _, search = seeded
    assert _found(search, text="Traceback") == [
        ("release-deploy_site_a-run2--1-1", "pod: rollout failed Traceback")
    ]
    assert _found(search, service="payments-api") == []
    assert _found(search, service="hello-api", site="site-a", text="no such words") == []


def test_without_text_the_lines_naming_the_pairs_come_back(
    seeded: tuple[RunningEs, LogSearch],
) -> None:
    _, search = seeded
    assert [event for _, event in _found(search, service="orders-api")] == [
        "deploy start service=orders-api site=site-a"
    ]


def test_limit_and_paging(seeded: tuple[RunningEs, LogSearch]) -> None:
    es, search = seeded
    assert len(_found(search, text="rollout", limit=2)) == 2
    with run_es() as big:
        settings = log_settings(big.url)
        install_index_template(big.client(), settings)
        helpers.bulk(
            big.client(),
            [
                {
                    "_index": "airflow-task-logs",
                    "_source": {
                        "log_id": "many--1-1",
                        "offset": n,
                        "timestamp": "2026-12-01T10:00:00Z",
                        "event": f"poll {n} service=hello-api",
                        "run_id": "r",
                    },
                }
                for n in range(1, 2601)
            ],
        )
        hits = LogSearch(big.client(), settings).search(LogQuery(service="hello-api", limit=2500))
        assert len(hits) == 2500
        assert [hit.offset for hit in hits] == list(range(2600, 100, -1))
        assert len(big.requests("_search")) >= 4


def test_hits_carry_the_kibana_link(seeded: tuple[RunningEs, LogSearch]) -> None:
    _, search = seeded
    (hit,) = search.search(LogQuery(text="Traceback"))
    assert hit.url is not None
    assert 'log_id:"release-deploy_site_a-run2--1-1"' in hit.url
    assert hit.as_dict()["offset"] == 3


def test_query_needs_something_to_look_for() -> None:
    with pytest.raises(LogSearchError, match="at least one of"):
        LogQuery(limit=5).validate()
    with pytest.raises(LogSearchError, match="limit"):
        LogQuery(text="x", limit=0).validate()


def test_unreachable_cluster_is_a_clear_error() -> None:
    with run_es() as es:
        settings = log_settings(es.url)
        client = es.client(max_retries=0)
    with pytest.raises(LogSearchError, match="cannot reach Elasticsearch"):
        LogSearch(client, settings).search(LogQuery(text="x"))


def test_command_line_over_real_task_logs(scenarios: Scenarios, tmp_path: Path) -> None:
    """The one full run: a fresh process configured only by the environment the stack uses."""
    home = AirflowHome(tmp_path, scenarios.es.url)
    found = subprocess.run(
        [
            sys.executable,
            "-m",
            "operators.logsearch",
            "--service",
            "hello-api",
            "--site",
            "site-a",
            "--run-id",
            RUN_ID,
            "--text",
            "traffic restored",
        ],
        env=home.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    (line,) = found.stdout.splitlines()
    run = scenarios.runs["say_hello"]
    assert f"{run.log_id} #" in line
    assert line.endswith("traffic restored service=hello-api site=site-a weight=50")
    assert "1 line(s) from 1 task log(s)" in found.stderr
    assert f'log_id:"{run.log_id}"' in found.stderr


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningEs]:
    """The settings of include/logging/task-logs.env in this process's environment, host = a stand-in."""
    with run_es() as es:
        for key, value in logging_settings().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AIRFLOW__ELASTICSEARCH__HOST", es.url)
        install_index_template(es.client(), log_settings(es.url))
        _seed(es)
        yield es


def test_command_line_output_and_exit_status(
    configured: RunningEs, capsys: pytest.CaptureFixture[str]
) -> None:
    from operators.logsearch.__main__ import main

    assert main(["--run-id", "run2", "--text", "rollout failed", "--json"]) == 0
    out, err = capsys.readouterr()
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert record["log_id"] == "release-deploy_site_a-run2--1-1"
    assert record["offset"] == 3
    assert "1 line(s) from 1 task log(s)" in err

    assert (
        main(["--service", "hello-api", "--site", "site-a", "--text", "rollout", "--limit", "5"])
        == 0
    )
    out, _ = capsys.readouterr()
    assert [line.rsplit("  ", 1)[1] for line in out.splitlines()] == [
        "pod: rollout done",
        "pod: rollout failed Traceback",
    ]

    assert main(["--service", "hello-api", "--text", "words nobody logged"]) == 1
    assert "no matching log lines" in capsys.readouterr().err

    assert main(["--limit", "5"]) == 2
    assert "at least one of" in capsys.readouterr().err


def test_command_line_reports_an_unreachable_cluster(
    configured: RunningEs, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from operators.logsearch.__main__ import main

    with run_es() as gone:
        url = gone.url
    monkeypatch.setenv("AIRFLOW__ELASTICSEARCH__HOST", url)
    monkeypatch.setenv("AIRFLOW__ELASTICSEARCH_CONFIGS__MAX_RETRIES", "0")
    assert main(["--text", "x"]) == 2
    assert "error: cannot reach Elasticsearch" in capsys.readouterr().err


def test_link_renders_the_pinned_log_id_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.models.taskinstancekey import TaskInstanceKey

    from operators.logsearch.link import TaskLogLink

    monkeypatch.setenv(
        "AIRFLOW__ELASTICSEARCH__FRONTEND", "kibana.example:5601/app/discover#/?q={log_id}"
    )
    monkeypatch.setenv(
        "AIRFLOW__ELASTICSEARCH__LOG_ID_TEMPLATE",
        "{dag_id}-{task_id}-{run_id}-{map_index}-{try_number}",
    )
    key = TaskInstanceKey(
        "release", "deploy", "manual__2026-12-04T10:00:00+00:00", try_number=2, map_index=-1
    )
    assert TaskLogLink().get_link(None, ti_key=key) == (
        "https://kibana.example:5601/app/discover#/?q=release-deploy-manual__2026-12-04T10%3A00%3A00%2B00%3A00--1-2"
    )
    monkeypatch.setenv("AIRFLOW__ELASTICSEARCH__FRONTEND", "")
    assert TaskLogLink().get_link(None, ti_key=key) == ""


def test_plugin_registers_the_link_for_every_task() -> None:
    import importlib.util

    from operators.logsearch.link import TaskLogLink

    spec = importlib.util.spec_from_file_location(
        "log_links_under_test", ROOT / "plugins" / "log_links.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.LogLinksPlugin
    assert [type(link) for link in plugin.global_operator_extra_links] == [TaskLogLink]
    assert [type(link) for link in plugin.operator_extra_links] == [TaskLogLink]
    assert plugin.global_operator_extra_links[0].name == "Task log (Kibana)"


def test_index_setup_is_repeatable_and_checks_the_target_index() -> None:
    with run_es() as es:
        settings = log_settings(es.url)
        install_index_template(es.client(), settings)
        install_index_template(es.client(), settings)
        assert es.index_names() == ["airflow-task-logs"]
        assert es.mappings("airflow-task-logs")["properties"]["offset"] == {"type": "long"}
        wrong = LogSettings(**{**settings.__dict__, "target_index": "other-logs"})
        with pytest.raises(ValueError, match="not covered by the template"):
            install_index_template(es.client(), wrong)


class _KibanaRecorder(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(
            {"path": self.path, "xsrf": self.headers.get("kbn-xsrf"), "body": json.loads(body)}
        )
        payload = b'{"data_view": {"id": "airflow-task-logs"}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_kibana_data_view_matches_the_frontend_link() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KibanaRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = log_settings("http://127.0.0.1:9")
        create_data_view(f"http://127.0.0.1:{server.server_address[1]}", settings)
    finally:
        server.shutdown()
        server.server_close()
    (call,) = _KibanaRecorder.received
    assert call["path"] == "/api/data_views/data_view"
    assert call["xsrf"] == "true"
    view = call["body"]["data_view"]
    assert view["title"] == "airflow-task-logs*"
    assert f"dataViewId:{view['id']}" in settings.frontend
