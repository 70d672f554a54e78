"""``python -m sandbox.demo``: the delivery pipeline end to end on the local two-site stand-in.

    python -m sandbox.demo --scenario good|tests-fail|bad-release

Starts the stand-ins (see ``sandbox.demo.stack``), sends steady user traffic through the
gateway, runs the ``delivery_pipeline`` DAG for the sample service at the scenario's commit with
``airflow dags test``, shows each task as it starts and ends, and prints a summary. Exit status:
0 when the pipeline succeeded, 1 when it failed (as the tests-fail and bad-release scenarios are
meant to), 2 when the demo itself could not run. Every process it started is stopped on exit,
also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.demo.stack import ROOT, SERVICE, SITE_NAMES, LocalStack, StackError, fresh_workdir

SCENARIOS = {
    "good": (
        "demo/good",
        "a good change: the pipeline builds, tests, scans and releases it to both sites",
    ),
    "tests-fail": (
        "demo/tests-fail",
        "a change whose unit tests fail: the pipeline stops at the test stage",
    ),
    "bad-release": (
        "demo/bad-release",
        "a change that passes CI but never becomes ready in production: the release rolls back by itself",
    ),
}
STAGES = ("build", "test", "scan", "release")
SYMBOL = {"success": "✓", "failed": "✗", "upstream_failed": "⊘", "skipped": "–", "running": "▶"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="good")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo", help="state of this run")
    parser.add_argument("--rate", type=float, default=20.0, help="user requests per second")
    args = parser.parse_args(argv)

    started = time.monotonic()
    timings: dict[str, float] = {}
    tag, what = SCENARIOS[args.scenario]
    print(f"== delivery pipeline demo: scenario {args.scenario}: {what}")
    workdir = fresh_workdir(args.workdir)
    stack = LocalStack(workdir)
    interrupted = False

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    load = None
    try:
        stack.start(progress=lambda message: print(f"   {message}"))
        timings["stand-ins up"] = time.monotonic() - started
        commit = stack.repository_tag(tag)
        before = {site: stack.deployment_image(site) for site in SITE_NAMES}
        from sandbox.gateway.load import LoadGenerator

        load = LoadGenerator(
            stack.proxy_url,
            host=_service_host(),
            rate_per_s=args.rate,
            max_requests=int(args.rate * 900),
            path="/hello?name=demo",
            site_header="X-Served-By",
        ).start()
        print(f"   user traffic: {args.rate:.0f} requests/s through the gateway for the whole run")
        print(f"== running delivery_pipeline service={SERVICE} git_ref={commit[:12]} ({tag})")
        pipeline_started = time.monotonic()
        outcome = run_pipeline(stack, commit, workdir)
        timings["pipeline"] = time.monotonic() - pipeline_started
        traffic = load.stop().to_dict()
        load = None
        after = {site: stack.deployment_image(site) for site in SITE_NAMES}
        print_summary(stack, outcome, before, after, traffic, timings, args.scenario, workdir)
        return 0 if outcome["state"] == "success" else 1
    except KeyboardInterrupt:
        interrupted = True
        print("\n== interrupted: stopping everything the demo started")
        return 130
    except StackError as err:
        print(f"== the demo could not run: {err}", file=sys.stderr)
        return 2
    finally:
        if load is not None:
            load.stop()
        stack.close()
        if not interrupted:
            total = time.monotonic() - started
            print(f"   (demo total {total:.0f}s; stand-ins stopped)")


def _service_host() -> str:
    from include.catalog import load_catalog

    return load_catalog().service(SERVICE).deploy.host


def run_pipeline(stack: LocalStack, commit: str, workdir: Path) -> dict[str, Any]:
    """Run the DAG in a child process and print task transitions from the metadata DB."""
    conf = json.dumps({"service": SERVICE, "git_ref": commit})
    log_path = workdir / "logs" / "pipeline.log"
    env = dict(os.environ)
    env.update(stack.env)
    since = datetime.utcnow().strftime("%Y-%m-%d %H:%M:%S")
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
                    _print_transitions(run_id, seen)
                if finished:
                    break
                time.sleep(1.0)
        except BaseException:
            os.killpg(child.pid, signal.SIGTERM)
            child.wait(timeout=30)
            raise
    state = _run_state(run_id) if run_id else "failed"
    return {"state": state, "run_id": run_id, "exit_code": child.returncode, "log": str(log_path)}


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


def _print_transitions(run_id: str, seen: dict[str, str]) -> None:
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
            print(f"   {SYMBOL.get(state, '·')} {row['task_id']:<45} {state}{shown}", flush=True)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")[:26])


def _duration(row: sqlite3.Row) -> float | None:
    start, end = _parse_time(row["start_date"]), _parse_time(row["end_date"])
    if start and end:
        return (end - start).total_seconds()
    return None


def _stage_summary(run_id: str | None) -> list[tuple[str, str, float | None]]:
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
            state = "not reached"
        else:
            state = "/".join(sorted(s or "none" for s in states))
        starts = [t for t in (_parse_time(r["start_date"]) for r in members) if t]
        ends = [t for t in (_parse_time(r["end_date"]) for r in members) if t]
        duration = (max(ends) - min(starts)).total_seconds() if starts and ends else None
        result.append((stage, state, duration))
    return result


def print_summary(
    stack: LocalStack,
    outcome: dict[str, Any],
    before: dict[str, str],
    after: dict[str, str],
    traffic: dict[str, Any],
    timings: dict[str, float],
    scenario: str,
    workdir: Path,
) -> None:
    from sandbox.demo.report import records_report

    print("\n================ summary ================")
    print(f"pipeline run     {outcome['run_id']}  state={outcome['state']}")
    for stage, state, duration in _stage_summary(outcome["run_id"]):
        shown = f"{duration:6.1f}s" if duration is not None else "      "
        print(f"  {stage:<8} {shown}  {state}")
    for reason in failure_reasons(Path(outcome["log"])):
        print(f"failure          {reason}")
    report = records_report(outcome["run_id"])
    for line in report:
        print(line)
    for site in SITE_NAMES:
        changed = "changed" if before[site] != after[site] else "unchanged"
        print(
            f"{site} image   before {_short(before[site])}  after {_short(after[site])}  ({changed})"
        )
    print(
        f"user requests    sent {traffic['sent']}  ok {traffic['ok']}  failed {traffic['failed']}"
        f"  by site {traffic.get('by_site', {})}"
    )
    if traffic.get("failed"):
        print(f"  first failures: {traffic.get('first_failures', [])[:3]}")
    print("timings          " + "  ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    print(f"pipeline log     {outcome['log']}")
    print(f"task logs        {Path(os.environ.get('AIRFLOW_HOME', ROOT / '.airflow')) / 'logs'}")
    print(
        f"records          {os.environ.get('AIRFLOW_CONN_SRE_RECORDS', '')}  (python -m operators.records history {SERVICE})"
    )
    print(f"stand-in logs    {workdir / 'logs'}")
    expected = {"good": "success", "tests-fail": "failed", "bad-release": "failed"}[scenario]
    verdict = (
        "as this scenario expects"
        if outcome["state"] == expected
        else "NOT what this scenario expects"
    )
    print(f"result           pipeline {outcome['state']} ({verdict})")


def failure_reasons(log_path: Path, limit: int = 3) -> list[str]:
    """The one-line errors of failed tasks, in the order they happened, from the pipeline log."""
    import re

    pattern = re.compile(r"^[A-Za-z_][\w.]*(?:Exception|Error|Failure): (.+)$")
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


def _short(image: str) -> str:
    if "@sha256:" in image:
        name, digest = image.split("@sha256:", 1)
        return f"{name.rsplit('/', 1)[-1]}@sha256:{digest[:12]}"
    return image


if __name__ == "__main__":
    raise SystemExit(main())
