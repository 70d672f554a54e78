"""Figures for the Kubernetes stand-in: site start-up time and 50 pods running at once.

Run: ``.venv/bin/python bench/kube_standin.py [--pods 50] [--starts 5]``. Prints one line per
figure; nothing is asserted here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

APP = """
import os, http.server
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def cli_start(tmp: Path) -> tuple[float, float]:
    """Seconds from spawning `python -m sandbox.kube` to its ready line, and to a stopped process."""
    kubeconfig = tmp / f"kubeconfig-{time.monotonic_ns()}"
    started = time.perf_counter()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.kube",
            "--site",
            "bench",
            "--port",
            "0",
            "--kubeconfig",
            str(kubeconfig),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    json.loads(server.stdout.readline())
    ready = time.perf_counter() - started
    server.terminate()
    server.wait(timeout=20)
    return ready, time.perf_counter() - started - ready


def in_process_start() -> float:
    from sandbox.kube.testing import run_site

    started = time.perf_counter()
    with run_site("bench-inproc"):
        return time.perf_counter() - started


def many_pods(count: int, tmp: Path) -> None:
    from kubernetes import client, config

    from sandbox.kube.testing import run_site

    app = tmp / "app.py"
    app.write_text(APP)
    with run_site("bench-pods", speed=4) as site:
        api = config.new_client_from_config(config_file=str(site.kubeconfig_path))
        core = client.CoreV1Api(api)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        for n in range(count):
            body = {
                "metadata": {"name": f"pod-{n:03d}", "labels": {"bench": "yes"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "bench:1",
                            "command": [sys.executable, str(app)],
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": 8080},
                                "periodSeconds": 1,
                            },
                            "resources": {"limits": {"memory": "256Mi"}},
                        }
                    ]
                },
            }
            core.create_namespaced_pod("default", body)
        created = time.perf_counter() - started

        def ready_count() -> int:
            pods = core.list_namespaced_pod("default", label_selector="bench=yes").items
            return sum(
                1
                for p in pods
                if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            )

        while ready_count() < count and time.perf_counter() - started < 120:
            time.sleep(0.1)
        all_ready = time.perf_counter() - started
        latencies = []
        for _ in range(20):
            t = time.perf_counter()
            core.list_namespaced_pod("default", label_selector="bench=yes")
            latencies.append(time.perf_counter() - t)
        time.sleep(2)
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        server_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (
            cpu_before.ru_utime + cpu_before.ru_stime
        )
        elapsed = time.perf_counter() - started
        deleted_at = time.perf_counter()
        core.delete_collection_namespaced_pod("default", label_selector="bench=yes")
        while (
            core.list_namespaced_pod("default", label_selector="bench=yes").items
            and time.perf_counter() - deleted_at < 60
        ):
            time.sleep(0.1)
        deleted = time.perf_counter() - deleted_at
        api.close()
    print(f"pods.count={count}")
    print(f"pods.create_all_seconds={created:.2f}")
    print(f"pods.all_ready_seconds={all_ready:.2f}")
    print(f"pods.list_{count}_median_ms={statistics.median(latencies) * 1000:.1f}")
    print(
        f"pods.site_and_client_cpu_seconds={server_cpu:.2f} over {elapsed:.1f}s wall ({os.cpu_count()} cores)"
    )
    print(f"pods.delete_all_seconds={deleted:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kube-bench-") as scratch:
        tmp = Path(scratch)
        starts = [cli_start(tmp) for _ in range(args.starts)]
        print(
            f"startup.cli_ready_seconds median={statistics.median(s[0] for s in starts):.3f} max={max(s[0] for s in starts):.3f} (n={args.starts})"
        )
        print(f"startup.cli_stop_seconds median={statistics.median(s[1] for s in starts):.3f}")
        print(f"startup.in_process_seconds={in_process_start():.3f}")
        many_pods(args.pods, tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
