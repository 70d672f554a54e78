"""Two processes racing for release locks, and connections lost in the middle of a write."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from operators.records import RecordsStore, RecordsUnavailableError, RetryPolicy, TaskRef
from tests.records.helpers import (
    FAST_RETRY,
    TcpProxy,
    count,
    mysql_admin,
    set_conn,
    unique,
    unset_conn,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.timeout(90)
def test_two_processes_race_for_locks_and_take_over_expired_ones(
    sqlite_conn_id: str, mysql_conn_id: str
) -> None:
    prefix = unique("race")
    locks = 20
    command = [sys.executable, "-m", "tests.records.lock_contender"]
    procs = [
        subprocess.Popen(
            [*command, owner, prefix, str(locks), sqlite_conn_id, mysql_conn_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for owner in ("run-a", "run-b")
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
        start = time.time() + 0.3
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start}\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    for conn_id in (sqlite_conn_id, mysql_conn_id):
        a, b = (r[conn_id] for r in results)
        names = sorted(a["1"])
        assert len(names) == locks
        winners = [(a["1"][n], b["1"][n]) for n in names]
        assert all(x != y for x, y in winners), f"{conn_id}: not exactly one winner: {winners}"
        # Phase 2: each process took over every expired lock it had lost.
        assert all(a["2"].values()) and all(b["2"].values())
        assert len(a["2"]) + len(b["2"]) == locks
        # Phase 3: the original winners cannot get their locks back while the new lease runs.
        assert not any(a["3"].values()) and not any(b["3"].values())
        with RecordsStore.from_conn_id(conn_id) as store:
            for name in names:
                holder = store.lock_holder(name)
                expected = "run-b" if a["1"][name] else "run-a"
                assert holder is not None and holder.owner_run_id == expected
            takeovers = [e for e in store.recent_audit_events(200) if e.target.startswith(prefix)]
            assert len(takeovers) == locks
            assert {e.action for e in takeovers} == {"lock.taken_over"}


def _connections_to(admin: Any, database: str, info_like: str | None = None) -> list[int]:
    cursor = admin.cursor()
    statement = (
        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()"
    )
    params: tuple[Any, ...] = (database,)
    if info_like is not None:
        statement += " AND INFO LIKE %s"
        params += (info_like,)
    cursor.execute(statement, params)
    return [int(row[0]) for row in cursor.fetchall()]


@pytest.mark.timeout(60)
def test_a_killed_connection_is_replaced_and_the_write_retried(
    mysql_conn_id: str,
    mysql_database: str,
    mysql_server: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = mysql_admin(mysql_server)
    try:
        with RecordsStore.from_conn_id(mysql_conn_id, retry=FAST_RETRY) as store:
            service = unique("svc")
            store.audit(actor="a", action="x.y", target=service, source="cli")
            killed = _connections_to(admin, mysql_database)
            assert killed, "the store keeps its connection open between writes"
            for thread_id in killed:
                admin.cursor().execute(f"KILL {thread_id}")
            with caplog.at_level(logging.WARNING, logger="operators.records"):
                store.record_build(
                    TaskRef("ci", unique("run"), "build"),
                    service=service,
                    commit="c1",
                    image="reg/x@sha256:1",
                    digest="sha256:1",
                )
            assert "records unit interrupted" in caplog.text
            assert count(store, "builds", "service = %s", (service,)) == 1
            assert not set(_connections_to(admin, mysql_database)) & set(killed)
    finally:
        admin.close()


def _start_release_in_thread(
    store: RecordsStore, service: str, outcome: list[Any]
) -> threading.Thread:
    def run() -> None:
        try:
            outcome.append(
                store.start_release(
                    service=service,
                    image="reg/x@sha256:1",
                    digest="sha256:1",
                    triggered_by="alice",
                    dag_id="release",
                    run_id=unique("run"),
                )
            )
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _kill_when_blocked_on_audit(admin: Any, database: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        blocked = _connections_to(admin, database, "INSERT INTO audit_events%")
        if blocked:
            for thread_id in blocked:
                admin.cursor().execute(f"KILL {thread_id}")
            return
        time.sleep(0.02)
    raise AssertionError("the release never reached its audit insert")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("attempts", [1, 3])
def test_connection_killed_mid_transaction_leaves_no_half_written_release(
    mysql_conn_id: str, mysql_database: str, mysql_server: dict[str, Any], attempts: int
) -> None:
    """The release row is written, the audit insert blocks on a table lock, the connection dies.

    With one attempt the call fails with a clear error and no release exists; with retries
    the whole unit runs again and exactly one release with one audit event exists.
    """
    service = unique("svc")
    holder = mysql_admin(mysql_server, mysql_database)
    killer = mysql_admin(mysql_server)
    outcome: list[Any] = []
    policy = RetryPolicy(attempts=attempts, first_delay=0.05)
    try:
        with RecordsStore.from_conn_id(mysql_conn_id, retry=policy) as store:
            holder.cursor().execute("LOCK TABLES audit_events WRITE")
            thread = _start_release_in_thread(store, service, outcome)
            try:
                _kill_when_blocked_on_audit(killer, mysql_database)
            finally:
                holder.cursor().execute("UNLOCK TABLES")
                thread.join(30)
            assert not thread.is_alive()
            if attempts == 1:
                [error] = outcome
                assert isinstance(error, RecordsUnavailableError), error
                assert "start_release failed after 1 attempt" in str(error)
                assert count(store, "releases", "service = %s", (service,)) == 0
            else:
                [release_id] = outcome
                assert isinstance(release_id, int)
                assert count(store, "releases", "service = %s", (service,)) == 1
                events = store.recent_audit_events(10, target=service)
                assert [e.action for e in events] == ["release.started"]
    finally:
        holder.close()
        killer.close()


@pytest.mark.timeout(30)
def test_an_unreachable_server_fails_clearly_after_bounded_attempts() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn_id = "sre_records_unreachable"
    set_conn(conn_id, f"mysql://root:@127.0.0.1:{port}/nothing?connect_timeout=1")
    try:
        with RecordsStore.from_conn_id(conn_id, retry=FAST_RETRY) as store:
            with pytest.raises(RecordsUnavailableError) as caught:
                store.audit(actor="a", action="x.y", target="t", source="cli")
    finally:
        unset_conn(conn_id)
    message = str(caught.value)
    assert "after 3 attempt(s)" in message
    assert conn_id in message
    assert "unreachable" in message


@pytest.mark.timeout(60)
def test_a_write_during_a_database_restart_is_retried_until_it_is_back(
    mysql_database: str, mysql_server: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The server goes away (every connection cut, new ones refused) and returns 0.5 s later."""
    proxy = TcpProxy(str(mysql_server["host"]), int(mysql_server["port"]))
    proxy.start()
    conn_id = "sre_records_restart"
    set_conn(conn_id, f"mysql://root:@127.0.0.1:{proxy.port}/{mysql_database}")
    policy = RetryPolicy(attempts=8, first_delay=0.1, max_delay=0.4)
    back = threading.Timer(0.5, proxy.start)
    try:
        with RecordsStore.from_conn_id(conn_id, retry=policy) as store:
            service = unique("svc")
            store.audit(actor="a", action="x.y", target=service, source="cli")
            proxy.stop()
            back.start()
            with caplog.at_level(logging.WARNING, logger="operators.records"):
                release_id = store.start_release(
                    service=service,
                    image="reg/x@sha256:1",
                    digest="sha256:1",
                    triggered_by="alice",
                    dag_id="release",
                    run_id=unique("run"),
                )
            assert caplog.text.count("records unit interrupted") >= 2
            assert [r.id for r in store.release_history(service)] == [release_id]
            assert count(store, "audit_events", "target = %s", (service,)) == 2
    finally:
        back.join()
        proxy.stop()
        unset_conn(conn_id)
