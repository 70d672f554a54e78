"""What the records store says about one delivery_pipeline run, as summary lines for the demo.

Reads the embedded SQLite records file named by ``AIRFLOW_CONN_SRE_RECORDS`` (read-only).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path


def _records_path() -> Path | None:
    uri = os.environ.get("AIRFLOW_CONN_SRE_RECORDS", "")
    if not uri.startswith("sqlite://"):
        return None
    return Path(uri[len("sqlite://") :])


def records_report(run_id: str | None, dag_id: str = "delivery_pipeline") -> list[str]:
    path = _records_path()
    if not run_id or path is None or not path.exists():
        return ["records          (none found)"]
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    db.row_factory = sqlite3.Row
    lines: list[str] = []
    try:
        build = db.execute(
            "SELECT image, digest, commit_id FROM builds WHERE dag_id=? AND run_id=? ORDER BY id DESC LIMIT 1",
            (dag_id, run_id),
        ).fetchone()
        if build:
            lines.append(
                f"digest           {build['digest']}  (commit {str(build['commit_id'])[:12]})"
            )
            lines.append(f"image            {build['image']}")
        test = db.execute(
            "SELECT tests_total, tests_failed, tests_errors, tests_skipped, failed_cases, coverage "
            "FROM test_reports WHERE dag_id=? AND run_id=? ORDER BY id DESC LIMIT 1",
            (dag_id, run_id),
        ).fetchone()
        if test:
            coverage = f"  coverage {test['coverage']:.1f}%" if test["coverage"] is not None else ""
            lines.append(
                f"tests            {test['tests_total']} run, {test['tests_failed']} failed, "
                f"{test['tests_errors']} errors, {test['tests_skipped']} skipped{coverage}"
            )
            failed = json.loads(test["failed_cases"] or "[]")
            for case in failed[:5]:
                if isinstance(case, dict):
                    name = ".".join(
                        part for part in (case.get("classname"), case.get("name")) if part
                    )
                else:
                    name = str(case)
                lines.append(f"  failed: {name}")
            if len(failed) > 5:
                lines.append(f"  ... and {len(failed) - 5} more")
        scans = db.execute(
            "SELECT gate_passed, findings, coverage, tool FROM quality_reports WHERE dag_id=? AND run_id=? "
            "ORDER BY id",
            (dag_id, run_id),
        ).fetchall()
        for scan in scans:
            gate = "passed" if scan["gate_passed"] else "FAILED"
            lines.append(
                f"quality gate     {gate}  findings {scan['findings']}  ({scan['tool'] or 'scan'})"
            )
        release = db.execute(
            "SELECT id, state FROM releases WHERE dag_id=? AND run_id=? ORDER BY id DESC LIMIT 1",
            (dag_id, run_id),
        ).fetchone()
        if release:
            lines.append(f"release          #{release['id']} {release['state']}")
            steps = db.execute(
                "SELECT site, step, state, weights FROM release_steps WHERE release_id=? ORDER BY id",
                (release["id"],),
            ).fetchall()
            for step in steps:
                weights = step["weights"] or ""
                lines.append(
                    f"  {step['site']:<7} {step['step']:<24} {step['state']:<10} {weights}"
                )
    except sqlite3.Error as err:
        lines.append(f"records          could not be read: {err}")
    finally:
        db.close()
    return lines
