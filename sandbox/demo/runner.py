"""Run ``delivery_pipeline`` with ``airflow dags test`` and follow it in the metadata DB.

Used by the demo and by the end-to-end test: the DAG runs in a child process (its whole output
goes to a log file) while task transitions are read from the SQLite metadata DB and printed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.demo.stack import ROOT, SERVICE, LocalStack

STAGES = ("build", "test", "scan", "release")
SYMBOL = {"success": "✓", "failed": "✗", "upstream_failed": "⊘", "skipped": "–", "running": "▶"}


def run_pipeline(
    stack: LocalStack, commit: str, workdir: Path, echo: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the DAG in a child process and print task transitions from the metadata DB."""
    conf = json.dumps({"service": SERVICE, "git_ref": commit})
    log_path = workdir / "logs" / "pipeline.log"
    env = dict(os.environ)
    env.update(stack.env)
    since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    with open(log_path, "wb") as log:
        child = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("airflow")),
                "dags",
                "test",
                "delivery_pipeline",
                "-c",
                conf,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        try:
            seen: dict[str, str] = {}
            run_id = None
            while True:
                finished = child.poll() is not None
                run_id = run_id or _find_run(since)
                if run_id:
                    _print_transitions(run_id, seen, echo)
                if finished:
                    break
                time.sleep(1.0)
        except BaseException:
            stop_process_group(child)
            raise
    state = _run_state(run_id) if run_id else "failed"
    return {"state": state, "run_id": run_id, "exit_code": child.returncode, "log": str(log_path)}


def stop_process_group(child: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after ``grace`` seconds."""
    try:
        os.killpg(child.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(child.pid, signal.SIGKILL)  # also any task process left in the group
    except ProcessLookupError:
        pass
    child.wait(timeout=10)


def _db() -> sqlite3.Connection:
    path = Path(os.environ.get("AIRFLOW_HOME", ROOT / ".airflow")) / "airflow.db"
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    connection.row_factory = sqlite3.Row
    return connection


def _find_run(since: str) -> str | None:
    try:
        with _db() as db:
            row = db.execute(
                "SELECT run_id FROM dag_run WHERE dag_id = 'delivery_pipeline' AND start_date >= ? "
                "ORDER BY id DESC LIMIT 1",
                (since,),
            ).fetchone()
    except sqlite3.Error:
        return None
    return row["run_id"] if row else None


def _run_state(run_id: str) -> str:
    with _db() as db:
        row = db.execute(
            "SELECT state FROM dag_run WHERE dag_id = 'delivery_pipeline' AND run_id = ?", (run_id,)
        ).fetchone()
    return str(row["state"]) if row else "unknown"


def _task_rows(run_id: str) -> list[sqlite3.Row]:
    with _db() as db:
        return db.execute(
            "SELECT task_id, state, start_date, end_date, try_number FROM task_instance "
            "WHERE dag_id = 'delivery_pipeline' AND run_id = ? ORDER BY start_date",
            (run_id,),
        ).fetchall()


def _print_transitions(run_id: str, seen: dict[str, str], echo: Callable[[str], None]) -> None:
    try:
        rows = _task_rows(run_id)
    except sqlite3.Error:
        return
    for row in rows:
        state = row["state"] or ""
        if not state or seen.get(row["task_id"]) == state:
            continue
        seen[row["task_id"]] = state
        if state in ("running", "deferred", "success", "failed", "upstream_failed", "up_for_retry"):
            duration = _duration(row)
            shown = f" {duration:5.1f}s" if duration is not None and state != "running" else ""
            echo(f"   {SYMBOL.get(state, '·')} {row['task_id']:<45} {state}{shown}")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")[:26])


def _duration(row: sqlite3.Row) -> float | None:
    start, end = _parse_time(row["start_date"]), _parse_time(row["end_date"])
    if start and end:
        return (end - start).total_seconds()
    return None


def stage_summary(run_id: str | None) -> list[tuple[str, str, float | None]]:
    if not run_id:
        return []
    rows = _task_rows(run_id)
    result = []
    for stage in STAGES:
        members = [row for row in rows if row["task_id"].split(".")[0] == stage]
        if not members:
            result.append((stage, "not run", None))
            continue
        states = {row["state"] for row in members}
        if "failed" in states:
            state = "failed"
        elif states <= {"success", "skipped"}:
            state = "success"
        elif "upstream_failed" in states and len(states - {"upstream_failed", "skipped"}) == 0:
            result.append((stage, "not reached", None))
            continue
        else:
            state = "/".join(sorted(s or "none" for s in states))
        starts = [t for t in (_parse_time(r["start_date"]) for r in members) if t]
        ends = [t for t in (_parse_time(r["end_date"]) for r in members) if t]
        duration = (max(ends) - min(starts)).total_seconds() if starts and ends else None
        result.append((stage, state, duration))
    return result


def failure_reasons(log_path: Path, limit: int = 3) -> list[str]:
    """The one-line errors of failed tasks, in the order they happened, from the pipeline log."""

    # The last line of a traceback: "package.module.ClassName: message".
    pattern = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*: (.+)$")
    reasons: list[str] = []
    try:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            for line in log:
                match = pattern.match(line.strip())
                if match and match.group(1) not in reasons:
                    reasons.append(match.group(1)[:300])
    except OSError:
        return []
    return reasons[:limit]
