"""Release-step writes against the records store in MariaDB: throughput and latency.

    .venv/bin/python bench/records_write.py [--writes 10000] [--sqlite]

Creates a database of its own on the MariaDB server (``SRE_TEST_MYSQL_HOST``/``PORT``, default
127.0.0.1:3306, user root), migrates it, starts one release and records ``--writes`` release
steps one after the other through :class:`operators.records.RecordsStore` (one transaction
and commit each, as an operator makes them), then writes the same steps again (the update path
of a retried task). Then times the audit listener: how long its hook blocks the caller and how
long until its background writes (pipeline run + audit event per DAG-run event) are done.
Prints writes/s and latency percentiles per phase; drops the database at the end. ``--sqlite`` runs the same against a SQLite file for comparison. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow-test"))

from operators.records import RecordsStore  # noqa: E402 (after the path set-up)

HOST = os.environ.get("SRE_TEST_MYSQL_HOST", "127.0.0.1")
PORT = int(os.environ.get("SRE_TEST_MYSQL_PORT", "3306"))
SITES = ("site-a", "site-b")


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def run_phase(store: RecordsStore, release_id: int, writes: int, label: str) -> None:
    latencies: list[float] = []
    started = time.perf_counter()
    for i in range(writes):
        before = time.perf_counter()
        store.record_release_step(
            release_id,
            site=SITES[i % 2],
            step=f"readmit:{i // 2}",
            state="success",
            weights={"site-a": 50, "site-b": 50},
            detail={"attempt": i, "note": "灰度 🚦"},
        )
        latencies.append(time.perf_counter() - before)
    elapsed = time.perf_counter() - started
    latencies.sort()
    ms = [v * 1000 for v in latencies]
    print(
        f"{label:<22} writes={writes} seconds={elapsed:.2f} writes_per_s={writes / elapsed:.0f} "
        f"p50_ms={percentile(ms, 0.50):.2f} p95_ms={percentile(ms, 0.95):.2f} "
        f"p99_ms={percentile(ms, 0.99):.2f} max_ms={ms[-1]:.2f} "
        f"mean_ms={statistics.fmean(ms):.2f}"
    )


def bench_listener(conn_id: str, events: int, label: str) -> None:
    """Time spent inside the listener hook (what a task waits for) and until all are written."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    from operators.records import RetryPolicy
    from operators.records.background import BackgroundRecorder
    from plugins.audit_listener import AuditListener

    recorder = BackgroundRecorder(
        lambda: RecordsStore.from_conn_id(conn_id, retry=RetryPolicy(attempts=1)),
        max_pending=events,
    )
    listener = AuditListener(recorder)
    runs = [
        DagRun(
            dag_id="bench",
            run_id=f"manual__{uuid.uuid4().hex}",
            run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.UI,
            triggering_user_name="bench",
            conf={"service": "bench-service"},
        )
        for _ in range(events)
    ]
    latencies: list[float] = []
    started = time.perf_counter()
    for dag_run in runs:
        before = time.perf_counter()
        listener.on_dag_run_running(dag_run=dag_run, msg="")
        latencies.append((time.perf_counter() - before) * 1000)
    recorder.flush(300)
    drained = time.perf_counter() - started
    latencies.sort()
    print(
        f"{label:<22} events={events} hook_p50_ms={percentile(latencies, 0.50):.3f} "
        f"hook_p99_ms={percentile(latencies, 0.99):.3f} hook_max_ms={latencies[-1]:.3f} "
        f"all_written_s={drained:.2f} lost={recorder.lost}"
    )


def bench_store(conn_id: str, uri: str, writes: int, label: str) -> None:
    from operators.records.migrate import migrate

    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = uri
    with RecordsStore.from_conn_id(conn_id) as store:
        migrate(store)
        release_id = store.start_release(
            service="bench-service",
            image="registry.local:5000/bench@sha256:" + "0" * 64,
            digest="sha256:" + "0" * 64,
            triggered_by="bench",
            dag_id="bench",
            run_id=uuid.uuid4().hex,
        )
        run_phase(store, release_id, writes, f"{label} insert")
        run_phase(store, release_id, writes, f"{label} same keys")
    bench_listener(conn_id, min(writes, 2000), f"{label} listener")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=10_000)
    parser.add_argument("--sqlite", action="store_true", help="also measure a SQLite file")
    args = parser.parse_args()

    import MySQLdb

    database = f"sre_records_bench_{uuid.uuid4().hex[:8]}"
    admin = MySQLdb.connect(host=HOST, port=PORT, user="root", passwd="", charset="utf8mb4")
    admin.cursor().execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    try:
        cursor = admin.cursor()
        cursor.execute("SELECT VERSION()")
        print(f"server={cursor.fetchone()[0]} host={HOST}:{PORT} database={database}")
        bench_store(
            "sre_records_bench_mysql",
            f"mysql://root:@{HOST}:{PORT}/{database}",
            args.writes,
            "mariadb",
        )
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            uri = "sqlite://" + str(Path(tmp, "records.db").resolve())
            bench_store("sre_records_bench_sqlite", uri, args.writes, "sqlite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
