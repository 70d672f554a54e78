"""The audit listener: lifecycle events into the records, never in a task's way."""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from operators.records import RecordsConfigError, RecordsStore, RetryPolicy
from operators.records.background import BackgroundRecorder
from plugins.audit_listener import AuditListener, AuditListenerPlugin, trigger_source
from tests.records.helpers import TcpProxy, set_conn, unique, unset_conn

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("run_type", "triggered_by", "conf", "run_id", "expected"),
    [
        ("manual", "ui", {}, "manual__2026", "ui"),
        ("manual", "rest_api", {}, "manual__2026", "api"),
        ("manual", "rest_api", {}, "webhook__github__hello-api__42", "webhook"),
        ("manual", None, {"trigger_source": "webhook"}, "r1", "webhook"),
        ("manual", "ui", {"trigger_source": "webhook"}, "r1", "ui"),
        ("scheduled", "timetable", {}, "scheduled__2026", "schedule"),
        ("asset_triggered", "asset", {}, "a", "schedule"),
        ("backfill", "backfill", {}, "b", "schedule"),
        ("manual", "cli", {}, "c", "cli"),
        ("manual", "test", {}, "t", "cli"),
        ("operator_triggered", "operator", {}, "o", "dag"),
        ("scheduled", None, {}, "scheduled__x", "schedule"),
        ("operator_triggered", None, {}, "o", "dag"),
        ("manual", None, {}, "manual__x", "api"),
    ],
)
def test_trigger_source(
    run_type: str, triggered_by: str | None, conf: dict[str, Any], run_id: str, expected: str
) -> None:
    assert trigger_source(run_type, triggered_by, conf, run_id) == expected


def test_the_plugin_registers_the_listener() -> None:
    assert AuditListenerPlugin.name == "sre_audit_listener"
    [listener] = AuditListenerPlugin.listeners
    assert isinstance(listener, AuditListener)


def make_dag_run(**overrides: Any) -> Any:
    """A real (unsaved) ORM DagRun, as the scheduler hands it to the listener."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    values: dict[str, Any] = {
        "dag_id": "delivery",
        "run_id": unique("manual_"),
        "run_type": DagRunType.MANUAL,
        "triggered_by": DagRunTriggeredByType.UI,
        "triggering_user_name": "王五",
        "conf": {"service": "hello-api", "git_ref": "main"},
        "state": DagRunState.RUNNING,
        "start_date": datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
    }
    values.update(overrides)
    return DagRun(**values)


class MarkedTaskInstance:
    """The attributes of the ORM task instance the api-server passes when a user marks a task."""

    def __init__(self, dag_run: Any, task_id: str) -> None:
        self.dag_run = dag_run
        self.dag_id = dag_run.dag_id
        self.run_id = dag_run.run_id
        self.task_id = task_id
        self.map_index = -1
        self.try_number = 1
        self.state = "success"
        self.hostname = None


@pytest.fixture
def recorded(
    sqlite_conn_id: str,
) -> Iterator[tuple[AuditListener, BackgroundRecorder, RecordsStore]]:
    store = RecordsStore.from_conn_id(sqlite_conn_id)
    recorder = BackgroundRecorder(
        lambda: RecordsStore.from_conn_id(sqlite_conn_id, retry=RetryPolicy(attempts=1))
    )
    yield AuditListener(recorder), recorder, store
    store.close()


def test_dag_run_lifecycle_is_recorded_with_who_and_where(
    recorded: tuple[AuditListener, BackgroundRecorder, RecordsStore],
) -> None:
    listener, recorder, store = recorded
    dag_run = make_dag_run()
    listener.on_dag_run_running(dag_run=dag_run, msg="")
    listener.on_task_instance_success(
        previous_state=None, task_instance=MarkedTaskInstance(dag_run, "deploy")
    )
    dag_run.end_date = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    listener.on_dag_run_failed(dag_run=dag_run, msg="task_failure")
    listener.on_dag_run_failed(dag_run=dag_run, msg="task_failure")  # delivered twice
    assert recorder.flush(10)

    run = store.pipeline_run("delivery", dag_run.run_id)
    assert run is not None
    assert (run.state, run.service, run.commit, run.source, run.triggered_by) == (
        "failed",
        "hello-api",
        "main",
        "ui",
        "王五",
    )
    assert run.finished_at == dag_run.end_date
    events = {e.action: e for e in store.recent_audit_events(20, run_id=dag_run.run_id)}
    assert sorted(events) == ["dag_run.failed", "dag_run.running", "task_instance.marked_success"]
    started = events["dag_run.running"]
    assert (started.actor, started.source, started.target) == ("王五", "ui", "delivery")
    assert started.occurred_at == dag_run.start_date
    marked = events["task_instance.marked_success"]
    assert (marked.actor, marked.source, marked.target, marked.task_id) == (
        "unknown",
        "ui",
        "delivery.deploy",
        "deploy",
    )
    assert events["dag_run.failed"].detail["msg"] == "task_failure"


def test_scheduled_and_webhook_runs(
    recorded: tuple[AuditListener, BackgroundRecorder, RecordsStore],
) -> None:
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    listener, recorder, store = recorded
    nightly = make_dag_run(
        run_id=unique("scheduled_"),
        run_type=DagRunType.SCHEDULED,
        triggered_by=DagRunTriggeredByType.TIMETABLE,
        triggering_user_name=None,
    )
    push = make_dag_run(
        run_id=unique("webhook__github__hello-api"),
        triggered_by=DagRunTriggeredByType.REST_API,
        triggering_user_name="github-webhook",
    )
    listener.on_dag_run_running(dag_run=nightly, msg="")
    listener.on_dag_run_running(dag_run=push, msg="")
    assert recorder.flush(10)
    [n] = store.recent_audit_events(5, run_id=nightly.run_id)
    [p] = store.recent_audit_events(5, run_id=push.run_id)
    assert (n.actor, n.source) == ("scheduler", "schedule")
    assert (p.actor, p.source) == ("github-webhook", "webhook")


def test_listener_hooks_return_without_waiting_for_the_database() -> None:
    opened = threading.Event()
    may_open = threading.Event()
    written: list[str] = []

    class SlowStore:
        def record_pipeline_run(self, **kwargs: Any) -> None:
            written.append(kwargs["run_id"])

        def audit(self, **kwargs: Any) -> None:
            written.append(kwargs["action"])

    def open_store() -> Any:
        opened.set()
        may_open.wait(10)
        return SlowStore()

    recorder = BackgroundRecorder(open_store)
    listener = AuditListener(recorder)
    dag_run = make_dag_run()
    listener.on_dag_run_running(dag_run=dag_run, msg="")
    assert opened.wait(5)
    assert written == [], "the hook returned while the store was still opening"
    may_open.set()
    assert recorder.flush(5)
    assert written == [dag_run.run_id, "dag_run.running"]


def test_records_database_down_never_raises_and_logs_each_lost_event_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn_id = "sre_records_down"
    set_conn(conn_id, f"mysql://root:@127.0.0.1:{port}/records?connect_timeout=1")
    try:
        recorder = BackgroundRecorder(
            lambda: RecordsStore.from_conn_id(conn_id, retry=RetryPolicy(attempts=1)),
            attempts=3,
            first_delay=0.01,
        )
        listener = AuditListener(recorder)
        runs = [make_dag_run() for _ in range(3)]
        with caplog.at_level(logging.WARNING, logger="operators.records"):
            for dag_run in runs:
                listener.on_dag_run_running(dag_run=dag_run, msg="")
            assert recorder.flush(20)
    finally:
        unset_conn(conn_id)
    lost = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(lost) == 3 and recorder.lost == 3
    assert "after 3 tries" in lost[0].getMessage()
    # Once the database is known to be down, later events get one try each.
    assert all("after 1 tries" in r.getMessage() for r in lost[1:])
    assert all(dag_run.run_id in r.getMessage() for dag_run, r in zip(runs, lost, strict=True))


def test_missing_records_connection_turns_recording_off_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = BackgroundRecorder(lambda: RecordsStore.from_conn_id("sre_records_undefined"))
    listener = AuditListener(recorder)
    with caplog.at_level(logging.WARNING, logger="operators.records"):
        for _ in range(3):
            listener.on_dag_run_running(dag_run=make_dag_run(), msg="")
        assert recorder.flush(5)
    assert recorder.disabled
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "AIRFLOW_CONN_SRE_RECORDS_UNDEFINED" in caplog.text
    with pytest.raises(RecordsConfigError):
        RecordsStore.from_conn_id("sre_records_undefined")


def test_a_full_queue_drops_writes_with_one_error(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()

    def blocked_store() -> Any:
        release.wait(10)
        raise RecordsConfigError("not configured")

    recorder = BackgroundRecorder(blocked_store, max_pending=2)
    with caplog.at_level(logging.ERROR, logger="operators.records"):
        for i in range(6):
            recorder.submit(f"write {i}", lambda store: None)
    release.set()
    assert recorder.flush(5)
    assert recorder.lost >= 3
    assert len([r for r in caplog.records if "queue is full" in r.getMessage()]) == 1


DAG_FILE = """
from airflow.sdk import DAG, task

with DAG("records_listener_e2e", schedule=None, catchup=False) as dag:

    @task
    def build():
        return "ok"

    @task
    def verify():
        return "ok"

    build() >> verify()
"""

RUNNER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from e2e_dag import dag
for conf in ({"service": "hello-api", "git_ref": "修复-🚀"}, {"service": "hello-api"}):
    run = dag.test(run_conf=conf)
    # Wait for the listener's writes, as a stopping process does. dag.test() loads the plugin
    # twice (scheduler-side and task-side hooks), so there are two recorders.
    from operators.records.background import flush_all
    flush_all(20)
    print("RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id}), flush=True)
    sys.stdin.readline()
"""


@pytest.mark.timeout(150)
def test_dag_runs_are_audited_and_a_records_outage_fails_no_task(
    tmp_path: Path, mysql_conn_id: str, mysql_database: str, mysql_server: dict[str, Any]
) -> None:
    """Two ``dag.test()`` runs in one process with only this plugin: records up, then down."""
    proxy = TcpProxy(str(mysql_server["host"]), int(mysql_server["port"]))
    proxy.start()
    dags, plugins = tmp_path / "dags", tmp_path / "plugins"
    dags.mkdir()
    plugins.mkdir()
    (dags / "e2e_dag.py").write_text(textwrap.dedent(DAG_FILE))
    (plugins / "audit_listener.py").symlink_to(ROOT / "plugins" / "audit_listener.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins),
        AIRFLOW_CONN_SRE_RECORDS=f"mysql://root:@127.0.0.1:{proxy.port}/{mysql_database}"
        "?connect_timeout=2",
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(dags)],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []

    def next_result() -> dict[str, Any]:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if line.startswith("RESULT "):
                return dict(json.loads(line[len("RESULT ") :]))
        raise AssertionError("".join(output[-60:]))

    try:
        first = next_result()
        proxy.stop()  # the records database goes away before the second run
        assert proc.stdin is not None
        proc.stdin.write("next\n")
        proc.stdin.flush()
        second = next_result()
        proc.stdin.write("done\n")
        proc.stdin.flush()
        rest, _ = proc.communicate(timeout=60)
        output.append(rest)
    finally:
        proxy.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(output[-60:])

    assert (first["state"], second["state"]) == ("success", "success")
    with RecordsStore.from_conn_id(mysql_conn_id) as store:
        events = store.recent_audit_events(50, run_id=first["run_id"])
        run = store.pipeline_run("records_listener_e2e", first["run_id"])
        assert store.recent_audit_events(50, run_id=second["run_id"]) == []
    actions = sorted((e.action, e.task_id or "") for e in events)
    # dag.test() creates its run already running, so Airflow announces no dag_run.running.
    assert actions == [
        ("dag_run.success", ""),
        ("task_instance.running", "build"),
        ("task_instance.running", "verify"),
        ("task_instance.success", "build"),
        ("task_instance.success", "verify"),
    ]
    [finished] = [e for e in events if e.action == "dag_run.success"]
    assert finished.source == "cli", "dag.test() runs are triggered_by=test"
    assert all(e.detail["try_number"] == 1 for e in events if e.task_id)
    assert run is not None and (run.state, run.service, run.commit) == (
        "success",
        "hello-api",
        "修复-🚀",
    )
    lost = [line for line in output if "records write lost" in line and second["run_id"] in line]
    assert len(lost) == 5, "one line per lost event: 4 task events and the run's end"


@pytest.mark.timeout(30)
def test_a_forked_child_neither_uses_nor_closes_the_parents_connection(mysql_conn_id: str) -> None:
    """Executors fork: the child opens its own connection and leaves the parent's alone."""
    recorder = BackgroundRecorder(
        lambda: RecordsStore.from_conn_id(mysql_conn_id, retry=RetryPolicy(attempts=1))
    )
    seen: list[int] = []

    def note_connection_id(store: RecordsStore) -> None:
        row = store.transaction("id", lambda tx: tx.one("SELECT CONNECTION_ID()"), write=False)
        assert row is not None
        seen.append(int(row[0]))

    recorder.submit("connection id", note_connection_id)
    assert recorder.flush(5)
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            recorder.submit("connection id", note_connection_id)
            if recorder.flush(5) and len(seen) == 2 and seen[1] != seen[0]:
                code = 0
            gc.collect()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    recorder.submit("connection id", note_connection_id)
    assert recorder.flush(5)
    assert seen == [seen[0], seen[0]], "the parent still uses its own, unbroken connection"
