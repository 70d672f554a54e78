"""``python -m operators.records``: migrate for the set-up script, readable tables, JSON."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from operators.records import ImageRef, RecordsStore, TaskRef, TestCounts
from operators.records.cli import run
from tests.records.helpers import set_conn, sqlite_uri, unique, unset_conn

ROOT = Path(__file__).resolve().parents[2]


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    status = run(list(args), out=out)
    return status, out.getvalue()


@pytest.mark.timeout(60)
def test_migrate_quiet_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    """What the set-up script runs on every set-up: silent on a new database and when current."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["SRE_RECORDS_CONN_ID"] = "sre_records_cli"
    env["AIRFLOW_CONN_SRE_RECORDS_CLI"] = sqlite_uri(tmp_path / "cli records.db")
    done = subprocess.run(
        [sys.executable, "-m", "operators.records", "migrate", "--quiet"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    set_conn("sre_records_cli", env["AIRFLOW_CONN_SRE_RECORDS_CLI"])
    request.addfinalizer(lambda: unset_conn("sre_records_cli"))
    with RecordsStore.from_conn_id("sre_records_cli") as store:
        assert [
            row[0]
            for row in store.transaction(
                "versions", lambda tx: tx.all("SELECT version FROM schema_migrations"), write=False
            )
        ] == [1]
    capsys.readouterr()
    assert cli("--conn-id", "sre_records_cli", "migrate", "--quiet") == (0, "")
    assert capsys.readouterr() == ("", "")


def test_migrate_fails_loudly_without_a_connection(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--conn-id", "sre_records_not_defined", "migrate", "--quiet") == (1, "")
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: the records connection 'sre_records_not_defined' is not defined")


def test_migrate_reports_when_up_to_date(conn_id: str) -> None:
    assert cli("--conn-id", conn_id, "migrate") == (0, "records schema is up to date\n")


def test_history_table_and_json(conn_id: str) -> None:
    service = unique("svc")
    digest = "sha256:" + "c" * 64
    with RecordsStore.from_conn_id(conn_id) as store:
        release_id = store.start_release(
            service=service,
            image="reg/app@" + digest,
            digest=digest,
            triggered_by="张三",
            dag_id="release",
            run_id=unique("run"),
            source="ui",
        )
        store.record_release_step(
            release_id,
            site="site-b",
            step="deploy",
            state="success",
            weights={"site-a": 100, "site-b": 0},
            now_running=ImageRef("reg/app@" + digest, digest),
        )
        store.finish_release(release_id, state="succeeded")

    status, text = cli("--conn-id", conn_id, "history", service)
    assert status == 0
    lines = text.splitlines()
    assert lines[0].split() == [
        "ID",
        "STATE",
        "IMAGE",
        "TRIGGERED_BY",
        "SOURCE",
        "STARTED",
        "FINISHED",
    ]
    assert lines[1].split()[:5] == [str(release_id), "succeeded", "reg/app@" + digest, "张三", "ui"]
    # Wide characters take two terminal columns: the source column lines up under its header.
    before_source = lines[1][: lines[1].index(" ui ") + 1]
    assert display_width(before_source) == lines[0].index("SOURCE")
    assert f"release {release_id} steps:" in text and "site-b  deploy  success" in text

    status, text = cli("--conn-id", conn_id, "history", service, "--json")
    [release] = json.loads(text)
    assert (release["id"], release["triggered_by"], release["steps"][0]["weights"]) == (
        release_id,
        "张三",
        {"site-a": 100, "site-b": 0},
    )

    status, text = cli("--conn-id", conn_id, "current-images", "--service", service, "--json")
    assert [i["site"] for i in json.loads(text)] == ["site-b"]
    status, text = cli("--conn-id", conn_id, "current-images", "--service", service)
    assert "site-b" in text and "reg/app@" + digest in text


@pytest.mark.parametrize(
    "argv",
    [
        ("last-green", "notadigest"),
        ("audit", "--limit", "99999999999999999999"),
        ("history", "svc", "--limit", "-1"),
        ("audit", "--limit", "ten"),
    ],
)
def test_odd_input_is_refused_by_the_command_line(conn_id: str, argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as refused:
        cli("--conn-id", conn_id, *argv)
    assert refused.value.code == 2


def test_last_green_and_audit(conn_id: str) -> None:
    service = unique("svc")
    digest = "sha256:" + "d" * 64
    with RecordsStore.from_conn_id(conn_id) as store:
        store.record_build(
            TaskRef("ci", unique("run"), "build"),
            service=service,
            commit="c1",
            image="reg/x@" + digest,
            digest=digest,
        )
        store.record_test_report(
            TaskRef("ci", unique("run"), "test"),
            service=service,
            digest=digest,
            counts=TestCounts(7, skipped=2),
        )
        store.audit(actor="ops", action="drill.started", target=service, source="schedule")

    status, text = cli("--conn-id", conn_id, "last-green", digest)
    assert status == 3, "a digest that is not releasable is a non-zero status for scripts"
    assert "build" in text and "7 tests, 2 skipped" in text
    assert text.rstrip().endswith("not green: scan")
    status, text = cli("--conn-id", conn_id, "last-green", digest, "--json")
    green = json.loads(text)
    assert green["releasable"] is False and green["build"]["commit"] == "c1"
    unknown = "sha256:" + "e" * 64
    status, text = cli("--conn-id", conn_id, "last-green", unknown)
    assert (status, text.splitlines()[0]) == (3, f"nothing green recorded for {unknown}")

    status, text = cli("--conn-id", conn_id, "audit", "--limit", "1")
    assert status == 0
    assert text.splitlines()[1].split()[2:5] == ["ops", "drill.started", service]
    status, text = cli("--conn-id", conn_id, "audit", "--limit", "1", "--json")
    [event] = json.loads(text)
    assert (event["action"], event["source"]) == ("drill.started", "schedule")
