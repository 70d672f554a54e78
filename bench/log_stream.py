"""Stream a CI step's 1,000,000 log lines (~100 MB) into the task log; print speed and memory.

Run: ``.venv/bin/python bench/log_stream.py [--lines 1000000] [--modes sync,deferred]``.

A Kubernetes stand-in site runs in its own process; the sample repository is checked out by
the step's init containers; the step prints the lines as fast as it can. Each mode runs in a
fresh "task process" that writes its log as the Airflow task runner does (structlog JSON to a
file):

- ``sync``: ``StepPodOperator`` follows the pod itself (``StepPodManager``);
- ``deferred``: the operator defers and ``StepPodTrigger`` follows the pod (the triggerer's
  share of the work), then the operator resumes.

For each mode it prints lines/s (first to last pod line written to the log), the end-to-end
time of the step, the peak RSS of the task process and its RSS before the step, then checks
that the log holds every line once, in order. Targets: >= 50,000 lines/s, < 150 MB peak.
Nothing is asserted here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAYLOAD = "x" * 84
GENERATOR = f"""
import os, sys
out = sys.stdout.buffer
count = int(os.environ["LINES"])
payload = b"{PAYLOAD}"
batch = []
for i in range(count):
    batch.append(b"%08d %s\\n" % (i, payload))
    if len(batch) == 1000:
        out.write(b"".join(batch))
        batch = []
out.write(b"".join(batch))
out.flush()
"""

SITE = """
import json, signal, sys, threading
from sandbox.kube.testing import run_site
with run_site("bench", namespaces=["ci"], log_max_bytes=1 << 30) as site:
    print(json.dumps({"kubeconfig": str(site.kubeconfig_path)}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
"""


def write_catalog(path: Path, lines: int) -> None:
    import yaml

    data = yaml.safe_load((ROOT / "include" / "catalog.yaml").read_text(encoding="utf-8"))
    service = next(s for s in data["services"] if s["name"] == "hello-api")
    service["steps"]["test"] = {
        "image": "python:3.11-slim",
        "command": ["python", "-c", GENERATOR],
        "env": {"LINES": str(lines)},
        "resources": {"cpu": "1", "memory": "256Mi"},
        "timeout_minutes": 30,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


class TimedFile:
    """The task log file; notes when the first and the last pod line were written."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("wb")
        self.first: float | None = None
        self.last: float | None = None

    def write(self, data: bytes) -> int:
        if b"[main] " in data:
            now = time.perf_counter()
            if self.first is None:
                self.first = now
            self.last = now
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()

    def fileno(self) -> int:
        return self.file.fileno()


class TaskInstance:
    """What the operator uses of a task instance: identity and XCom."""

    dag_id, task_id, run_id, map_index, try_number = "bench", "test.run_tests", "bench_run", -1, 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


class Records:
    """Records writes go nowhere: the bench measures the log path only."""

    def __enter__(self) -> Records:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: 0


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(mode: str, log_path: Path) -> dict[str, Any]:
    """One task process: run the step, report figures."""
    from airflow.sdk.exceptions import TaskDeferred
    from airflow.sdk.log import configure_logging

    output = TimedFile(log_path)
    configure_logging(json_output=True, output=output, sending_to_supervisor=True)  # type: ignore[arg-type]

    from operators.ci.step import StepPodOperator

    def operator() -> StepPodOperator:
        return StepPodOperator(
            task_id="test.run_tests",
            service="hello-api",
            step="test",
            git_ref="main",
            required_results=(),
            deferrable=mode == "deferred",
            recorder_factory=Records,
        )

    context: Any = {"ti": TaskInstance(), "run_id": TaskInstance.run_id}
    before = rss_mb()
    started = time.perf_counter()
    try:
        operator().run_step(context)
    except TaskDeferred as deferred:
        trigger = deferred.trigger

        async def first_event() -> Any:
            return await anext(trigger.run())

        event = asyncio.run(first_event()).payload
        getattr(operator(), deferred.method_name)(context, event)
    elapsed = time.perf_counter() - started
    output.flush()
    streamed = (output.last or 0) - (output.first or 0)
    return {
        "mode": mode,
        "stream_seconds": round(streamed, 2),
        "step_seconds": round(elapsed, 2),
        "first_line_after_s": round((output.first or started) - started, 2),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def check_log(log_path: Path, lines: int) -> tuple[int, int]:
    """Pod lines found in the task log, and how many were missing, repeated or out of order."""
    expected, wrong = 0, 0
    with log_path.open("rb") as handle:
        for raw in handle:
            event = json.loads(raw).get("event", "")
            for line in event.split("\n"):
                if not line.startswith("[main] ") or line.startswith("[main] result"):
                    continue
                number = line[7:15]
                if number != f"{expected:08d}" or line[16:] != PAYLOAD:
                    wrong += 1
                expected += 1
    return expected, wrong + abs(lines - expected)


def start_site(tmp: Path) -> tuple[subprocess.Popen[str], str]:
    site = subprocess.Popen(
        [sys.executable, "-c", SITE], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert site.stdout is not None
    ready = json.loads(site.stdout.readline())
    return site, ready["kubeconfig"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--modes", default="sync,deferred")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.log))), flush=True)
        return

    from sandbox.sample_repo import create_repository

    with tempfile.TemporaryDirectory(prefix="bench-log-") as scratch:
        tmp = Path(scratch)
        repo = create_repository(tmp / "git")
        catalog = tmp / "catalog.yaml"
        write_catalog(catalog, args.lines)
        site, kubeconfig = start_site(tmp)
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(tmp / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "SRE_CATALOG_PATH": str(catalog),
            "SRE_GIT_BASE": repo.path.parent.as_uri(),
            "AIRFLOW_CONN_KUBERNETES_CI": json.dumps(
                {
                    "conn_type": "kubernetes",
                    "extra": {"kube_config_path": kubeconfig, "namespace": "ci"},
                }
            ),
        }
        try:
            print(
                f"log_stream lines={args.lines} payload_bytes~={args.lines * (len(PAYLOAD) + 10)}"
            )
            for mode in args.modes.split(","):
                log_path = tmp / f"task-{mode}.log"
                done = subprocess.run(
                    [sys.executable, __file__, "--child", mode, "--log", str(log_path)],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=1800,
                    check=False,
                )
                if done.returncode != 0:
                    tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
                    print(
                        f"mode={mode} failed (exit {done.returncode}):\n{done.stderr[-3000:]}{tail}"
                    )
                    continue
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                found, wrong = check_log(log_path, args.lines)
                rate = args.lines / figures["stream_seconds"] if figures["stream_seconds"] else 0
                print(
                    f"mode={mode} lines_per_s={rate:,.0f} stream_s={figures['stream_seconds']} "
                    f"step_s={figures['step_seconds']} first_line_after_s={figures['first_line_after_s']} peak_rss_mb={figures['peak_rss_mb']} "
                    f"rss_before_step_mb={figures['rss_before_mb']} "
                    f"log_lines={found} missing_or_repeated={wrong} "
                    f"log_mb={log_path.stat().st_size / 1e6:.0f}"
                )
        finally:
            site.terminate()
            site.wait(timeout=30)


if __name__ == "__main__":
    main()
