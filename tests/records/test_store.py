"""The records store against real SQLite files and the real MariaDB server."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from operators.records import (
    FailedCase,
    ImageRef,
    RecordsConfigError,
    RecordsError,
    RecordsStore,
    TaskRef,
    TestCounts,
)
from operators.records.dialect import MIGRATIONS_DIR
from operators.records.migrate import discover, migrate
from tests.records.helpers import count, set_conn, sqlite_uri, unique, unset_conn

pytestmark = pytest.mark.timeout(60)

DIGEST = "sha256:" + "ab" * 32


def digest_for(label: str) -> str:
    return "sha256:" + (label.encode().hex() * 64)[:64]


def test_both_dialects_ship_the_same_migration_versions() -> None:
    mysql = [(m.version, m.name) for m in discover(MIGRATIONS_DIR / "mysql")]
    sqlite = [(m.version, m.name) for m in discover(MIGRATIONS_DIR / "sqlite")]
    assert mysql == sqlite
    assert mysql[0] == (1, "initial")


def test_retried_build_updates_its_record_and_a_new_try_adds_one(store: RecordsStore) -> None:
    service = unique("svc")
    digest = digest_for(service)
    ref = TaskRef("ci_build", unique("run"), "build", try_number=1)
    first = store.record_build(
        ref, service=service, commit="c1", image="reg/a@" + digest, digest=digest
    )
    again = store.record_build(
        ref,
        service=service,
        commit="c1",
        image="reg/b@" + digest,
        digest=digest,
        commit_message="second write",
    )
    assert again == first
    assert count(store, "builds", "service = %s", (service,)) == 1
    build = store.last_green(digest).build
    assert build is not None and build.id == first
    assert (build.image, build.commit_message) == ("reg/b@" + digest, "second write")

    retry = TaskRef(ref.dag_id, ref.run_id, "build", try_number=2)
    second = store.record_build(
        retry, service=service, commit="c1", image=None, digest=None, state="failed"
    )
    assert second != first
    assert count(store, "builds", "service = %s", (service,)) == 2


def test_every_keyed_write_is_idempotent(store: RecordsStore) -> None:
    service = unique("svc")
    run_id = unique("run")
    digest = digest_for(service)
    for _ in range(2):
        store.record_pipeline_run(
            dag_id="delivery", run_id=run_id, state="running", service=service, source="ui"
        )
        store.record_test_report(
            TaskRef("delivery", run_id, "test"),
            service=service,
            digest=digest,
            counts=TestCounts(total=3, failed=1),
            failed_cases=[FailedCase("test_a", "pkg.Tests", "boom")],
        )
        store.record_quality_report(
            TaskRef("delivery", run_id, "scan"),
            service=service,
            digest=digest,
            gate_passed=False,
            findings={"critical": 1},
        )
        release_id = store.start_release(
            service=service,
            image="reg/x@" + digest,
            digest=digest,
            triggered_by="alice",
            dag_id="release",
            run_id=run_id,
            source="api",
        )
        store.record_release_step(release_id, site="site-b", step="drain", state="success")
        store.record_approval(
            TaskRef("release", run_id, "approve"),
            decision="approved",
            approver="bob",
            release_id=release_id,
        )
        store.finish_release(release_id, state="succeeded")
        store.audit(
            actor="alice",
            action="freeze.overridden",
            target=service,
            source="ui",
            event_key=f"override:{run_id}",
        )
    assert count(store, "pipeline_runs", "run_id = %s", (run_id,)) == 1
    assert count(store, "test_reports", "service = %s", (service,)) == 1
    assert count(store, "quality_reports", "service = %s", (service,)) == 1
    assert count(store, "releases", "service = %s", (service,)) == 1
    assert count(store, "release_steps", "release_id = %s", (release_id,)) == 1
    assert count(store, "approvals", "run_id = %s", (run_id,)) == 1
    actions = sorted(e.action for e in store.recent_audit_events(50, target=service))
    assert actions == [
        "approval.approved",
        "freeze.overridden",
        "release.started",
        "release.succeeded",
    ]


def test_audit_without_key_records_each_call(store: RecordsStore) -> None:
    target = unique("target")
    for _ in range(2):
        store.audit(actor="ops", action="drill.started", target=target, source="schedule")
    assert len(store.recent_audit_events(10, target=target)) == 2


def test_pipeline_run_keeps_earlier_values_and_clears_end_on_rerun(store: RecordsStore) -> None:
    run_id = unique("run")
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    store.record_pipeline_run(
        dag_id="d",
        run_id=run_id,
        state="running",
        service="hello-api",
        source="webhook",
        triggered_by="gitea-webhook",
        started_at=start,
    )
    store.record_pipeline_run(
        dag_id="d", run_id=run_id, state="failed", finished_at=start + timedelta(minutes=5)
    )
    run = store.pipeline_run("d", run_id)
    assert run is not None
    assert (run.state, run.service, run.source, run.triggered_by) == (
        "failed",
        "hello-api",
        "webhook",
        "gitea-webhook",
    )
    assert run.started_at == start
    assert run.finished_at == start + timedelta(minutes=5)
    store.record_pipeline_run(dag_id="d", run_id=run_id, state="running")
    rerun = store.pipeline_run("d", run_id)
    assert rerun is not None and rerun.finished_at is None and rerun.state == "running"


def test_start_release_refuses_another_image_for_the_same_run(store: RecordsStore) -> None:
    service = unique("svc")
    args: dict[str, Any] = {
        "service": service,
        "triggered_by": "alice",
        "dag_id": "release",
        "run_id": "r1",
    }
    store.start_release(image="reg/a@" + DIGEST, digest=DIGEST, **args)
    with pytest.raises(RecordsError, match="already started release"):
        store.start_release(image="reg/b@sha256:00", digest="sha256:00", **args)


def test_utf8mb4_round_trip(store: RecordsStore) -> None:
    service = unique("支付服务🚀")
    message = "修复发布流程的回滚问题 🚀🔥 — naïve café"
    person = "张三 👩‍💻"
    digest = digest_for(service)
    ref = TaskRef("交付", unique("运行"), "构建")
    store.record_build(
        ref,
        service=service,
        commit="9f3c2e1",
        image="reg/支付@" + digest,
        digest=digest,
        commit_message=message,
        detail={"备注": "🙂"},
    )
    store.record_test_report(
        TaskRef(ref.dag_id, ref.run_id, "测试"),
        service=service,
        digest=digest,
        counts=TestCounts(total=1),
        detail=message,
    )
    store.record_quality_report(
        TaskRef(ref.dag_id, ref.run_id, "扫描"),
        service=service,
        digest=digest,
        gate_passed=True,
        findings={"严重": 0, "🐛": 0},
    )
    release_id = store.start_release(
        service=service,
        image="reg/支付@" + digest,
        digest=digest,
        triggered_by=person,
        dag_id=ref.dag_id,
        run_id=ref.run_id,
        detail={"reason": message},
    )
    store.record_release_step(
        release_id,
        site="站点-a",
        step="部署",
        state="success",
        detail={"说明": message},
        now_running=ImageRef("reg/支付@" + digest, digest),
    )

    green = store.last_green(digest)
    assert green.releasable
    assert green.build is not None and green.build.commit_message == message
    assert green.build.ref == ref
    assert green.scan is not None and dict(green.scan.findings) == {"严重": 0, "🐛": 0}
    [release] = store.release_history(service)
    assert release.triggered_by == person
    assert release.detail == {"reason": message}
    assert release.steps[0].step == "部署" and release.steps[0].detail == {"说明": message}
    [image] = store.current_images(service)
    assert (image.site, image.image) == ("站点-a", "reg/支付@" + digest)
    [event] = store.recent_audit_events(1, target=service)
    assert (event.actor, event.target) == (person, service)


def test_last_green_picks_passing_records_of_the_digest(store: RecordsStore) -> None:
    service = unique("svc")
    digest = digest_for(service)
    run = unique("run")
    assert not store.last_green(digest).releasable
    store.record_build(
        TaskRef("ci", run, "build"),
        service=service,
        commit="c9",
        image=None,
        digest=None,
        state="failed",
    )
    store.record_build(
        TaskRef("ci", run, "build", try_number=2),
        service=service,
        commit="c9",
        image="reg/x@" + digest,
        digest=digest,
    )
    store.record_test_report(
        TaskRef("ci", run, "test"), service=service, digest=digest, counts=TestCounts(5, errors=1)
    )
    store.record_quality_report(
        TaskRef("ci", run, "scan"), service=service, digest=digest, gate_passed=False, findings={}
    )
    green = store.last_green(digest)
    assert green.build is not None and green.build.ref.try_number == 2
    assert green.test is None and green.scan is None and not green.releasable

    store.record_test_report(
        TaskRef("ci", run, "test", try_number=2),
        service=service,
        digest=digest,
        counts=TestCounts(5, skipped=1),
        coverage=88.5,
    )
    # A scan recorded against the commit (no digest) counts for the digest built from it.
    store.record_quality_report(
        TaskRef("ci", run, "scan", try_number=2),
        service=service,
        commit="c9",
        gate_passed=True,
        findings={"minor": 2},
        tool="ruff",
    )
    green = store.last_green(digest)
    assert green.releasable
    assert green.test is not None and green.test.coverage == 88.5
    assert green.test.counts == TestCounts(5, skipped=1)
    assert green.scan is not None and green.scan.tool == "ruff"
    assert not store.last_green(digest_for("other" + service)).releasable


def test_failed_cases_are_kept_and_bounded(store: RecordsStore) -> None:
    service = unique("svc")
    digest = digest_for(service)
    cases = [FailedCase(f"test_{i}", "pkg.T", "x" * 5000) for i in range(250)]
    store.record_test_report(
        TaskRef("ci", unique("run"), "test"),
        service=service,
        digest=digest,
        counts=TestCounts(300, failed=250),
        failed_cases=cases,
    )

    def work(tx: Any) -> Any:
        return tx.one(
            "SELECT state, tests_failed, failed_cases FROM test_reports WHERE digest = %s",
            (digest,),
        )

    state, failed, stored = store.transaction("read", work, write=False)
    assert (state, failed) == ("failed", 250)
    stored_cases = json.loads(stored)
    assert len(stored_cases) == 200
    assert len(stored_cases[0]["message"]) == 2000


def test_release_history_and_the_image_each_site_runs(store: RecordsStore) -> None:
    service = unique("svc")
    old = ImageRef("reg/app@" + digest_for("old"), digest_for("old"))
    new = ImageRef("reg/app@" + digest_for("new"), digest_for("new"))
    first = store.start_release(
        service=service,
        image=old.image,
        digest=old.digest,
        triggered_by="alice",
        dag_id="release",
        run_id=unique("r"),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    for site in ("site-b", "site-a"):
        store.record_release_step(first, site=site, step="deploy", state="success", now_running=old)
    store.finish_release(first, state="succeeded")

    second = store.start_release(
        service=service,
        image=new.image,
        digest=new.digest,
        triggered_by="bob",
        dag_id="release",
        run_id=unique("r"),
        source="webhook",
    )
    store.record_release_step(
        second, site="site-b", step="drain", state="success", weights={"site-a": 100, "site-b": 0}
    )
    store.record_release_step(
        second, site="site-b", step="deploy", state="success", now_running=new
    )
    images = {i.site: i for i in store.current_images(service)}
    assert images["site-b"].image == new.image and images["site-b"].release_id == second
    assert images["site-a"].image == old.image
    store.record_release_step(second, site="site-b", step="verify", state="failed", detail="5xx")
    store.record_release_step(
        second, site="site-b", step="rollback", state="rolled_back", now_running=old
    )
    store.finish_release(second, state="rolled_back", detail={"why": "health check failed"})

    assert {i.site: i.image for i in store.current_images(service)} == {
        "site-a": old.image,
        "site-b": old.image,
    }
    history = store.release_history(service)
    assert [r.id for r in history] == [second, first]
    latest = history[0]
    assert (latest.state, latest.source, latest.triggered_by) == ("rolled_back", "webhook", "bob")
    assert latest.finished_at is not None
    assert [s.step for s in latest.steps] == ["drain", "deploy", "verify", "rollback"]
    assert latest.steps[0].weights == {"site-a": 100, "site-b": 0}
    assert latest.detail == {"why": "health check failed"}
    assert store.release_history(service, limit=1)[0].id == second
    found = store.release_for_run("release", latest.run_id, service)
    assert found is not None and found.id == second
    assert store.get_release(second) == latest


def test_release_lock_lifecycle_and_expiry(store: RecordsStore) -> None:
    service = unique("svc")
    assert store.acquire_lock(service, "run-1", ttl=1.0)
    assert not store.acquire_lock(service, "run-2", ttl=60)
    assert store.acquire_lock(service, "run-1", ttl=1.0), "the owner renews its own lease"
    assert not store.release_lock(service, "run-2"), "only the owner releases"
    holder = store.lock_holder(service)
    assert holder is not None and holder.owner_run_id == "run-1"
    time.sleep(1.2)
    assert store.acquire_lock(service, "run-2", ttl=timedelta(minutes=5)), "expired lease"
    assert not store.acquire_lock(service, "run-1", ttl=60), "the old owner lost it"
    assert not store.release_lock(service, "run-1")
    [event] = store.recent_audit_events(5, target=service)
    assert event.action == "lock.taken_over" and event.detail["previous_owner"] == "run-1"
    assert store.release_lock(service, "run-2")
    assert store.lock_holder(service) is None
    assert store.acquire_lock(service, "run-3", ttl=1)
    with pytest.raises(ValueError):
        store.acquire_lock(service, "run-3", ttl=0)


def test_a_failure_mid_transaction_leaves_nothing_behind(store: RecordsStore, backend: str) -> None:
    """start_release writes the release and its audit event; the second insert fails."""
    service = unique("boom")
    if backend == "sqlite":
        trigger = (
            "CREATE TRIGGER fail_boom BEFORE INSERT ON audit_events "
            "WHEN NEW.target LIKE 'boom-%' BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
        )
    else:
        trigger = (
            "CREATE TRIGGER fail_boom BEFORE INSERT ON audit_events FOR EACH ROW "
            "BEGIN IF NEW.target LIKE 'boom-%' THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit refused'; END IF; END"
        )
    store.transaction("create trigger", lambda tx: tx.execute_raw(trigger))
    try:
        with pytest.raises(RecordsError, match="audit refused"):
            store.start_release(
                service=service,
                image="reg/x@" + DIGEST,
                digest=DIGEST,
                triggered_by="a",
                dag_id="release",
                run_id=unique("r"),
            )
    finally:
        store.transaction("drop trigger", lambda tx: tx.execute_raw("DROP TRIGGER fail_boom"))
    assert count(store, "releases", "service = %s", (service,)) == 0
    assert store.release_history(service) == []


def test_sqlite_writer_waits_for_another_writer(tmp_path: Path) -> None:
    """A write that meets a locked SQLite file waits for the lock instead of failing."""
    path = tmp_path / "locked.db"
    set_conn("sre_records_lockwait", sqlite_uri(path))
    try:
        with RecordsStore.from_conn_id("sre_records_lockwait") as store:
            migrate(store)
            other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO release_locks VALUES ('held', 'other', 'x', 'x')")
            release = threading.Timer(0.5, other.execute, ("COMMIT",))
            release.start()
            try:
                store.audit(actor="a", action="x.y", target="t", source="cli")
            finally:
                release.join()
                other.close()
            assert len(store.recent_audit_events(5, target="t")) == 1
            assert count(store, "release_locks", "service = %s", ("held",)) == 1
    finally:
        unset_conn("sre_records_lockwait")


def test_missing_or_unsupported_connection_is_a_clear_error() -> None:
    with pytest.raises(RecordsConfigError, match="AIRFLOW_CONN_SRE_RECORDS_NOT_THERE"):
        RecordsStore.from_conn_id("sre_records_not_there")
    set_conn("sre_records_pg", "postgres://u:p@127.0.0.1:5432/x")
    try:
        with pytest.raises(RecordsConfigError, match="'postgres'"):
            RecordsStore.from_conn_id("sre_records_pg")
    finally:
        unset_conn("sre_records_pg")


def test_conn_id_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("SRE_RECORDS_CONN_ID", "sre_records_env_choice")
    monkeypatch.setenv("AIRFLOW_CONN_SRE_RECORDS_ENV_CHOICE", sqlite_uri(tmp_path / "x.db"))
    with RecordsStore.from_conn_id() as store:
        assert store.conn_id == "sre_records_env_choice"
        assert store.dialect.name == "sqlite"


def test_schema_missing_says_how_to_fix(empty_store_factory: Any) -> None:
    store = empty_store_factory("sqlite")
    with pytest.raises(RecordsError, match="operators.records migrate"):
        store.current_images()
