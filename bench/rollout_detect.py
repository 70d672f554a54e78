"""How fast does the rollout trigger notice a Deployment finishing or failing, next to kubectl?

On one stand-in site, each rollout patches the Deployment's image and then waits for it two ways
at the same time: ``RolloutWaitTrigger`` (our watch-based trigger) and ``kubectl rollout status``
with the site's kubeconfig. The time from the patch to each one's answer is measured; their
difference is the trigger's extra detection latency. Rollouts of 2 replicas (short) and 6
replicas (long) show whether the trigger's API requests grow with the rollout's length; a version
that never becomes ready shows detection of a failed rollout (ProgressDeadlineExceeded).

Target: median detection latency <= kubectl's + 0.2 s; requests per rollout flat across lengths.

Usage: ``python bench/rollout_detect.py [--rounds N]``; prints one line per rollout and a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow-test"))


EXTRA_KUBECTL_ARGS: list[str] = []


def kubectl_wait(kubeconfig: Path, result: dict[str, float | int]) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [
            "/usr/bin/kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            "prod",
            "rollout",
            "status",
            "deployment/hello-api",
            "--timeout=90s",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    result["end"] = time.monotonic()
    result["code"] = proc.returncode
    result["started"] = started
    if proc.returncode and not result.get("stderr"):
        result["stderr"] = proc.stderr.strip()[-300:]  # type: ignore[assignment]


async def trigger_wait(image: str) -> dict:
    from operators.release.triggers import RolloutWaitTrigger

    trigger = RolloutWaitTrigger(
        site="site-a",
        kubernetes_conn_id="kubernetes_bench",
        namespace="prod",
        deployment="hello-api",
        container="app",
        image=image,
        deadline=time.time() + 90,
    )
    async for event in trigger.run():
        return dict(event.payload)
    raise RuntimeError("trigger ended without an event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="rollouts per kind")
    args = parser.parse_args()

    from kubernetes import client, config

    from sandbox.kube.testing import run_site
    from tests.release.world import NAMESPACE, SERVICE, build_images, deployment, service_object

    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        images = build_images(tmp / "images")
        kubeconfig = tmp / "kubeconfig"
        with run_site(
            "site-a", images_dir=tmp / "images", namespaces=(NAMESPACE,), kubeconfig_path=kubeconfig
        ):
            os.environ["AIRFLOW_CONN_KUBERNETES_BENCH"] = json.dumps(
                {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}
            )
            configuration = client.Configuration()
            config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
            api = client.ApiClient(configuration)
            apps = client.AppsV1Api(api)
            client.CoreV1Api(api).create_namespaced_service(NAMESPACE, service_object())
            apps.create_namespaced_deployment(NAMESPACE, deployment("site-a", images["v1"]))
            rows = []
            plan = []
            for index in range(args.rounds):
                plan.append(("short", 2, images["v2" if index % 2 == 0 else "v1"]))
            for index in range(args.rounds):
                plan.append(("long", 6, images["v6" if index % 2 == 0 else "v2"]))
            plan.append(("failing", 2, images["never-ready"]))
            current = images["v1"]
            asyncio.run(trigger_wait(current))
            for kind, replicas, image in plan:
                body = {"spec": {"replicas": replicas}}
                apps.patch_namespaced_deployment(SERVICE, NAMESPACE, body)
                asyncio.run(trigger_wait(current))  # settle the scale change first
                patched = time.monotonic()
                apps.patch_namespaced_deployment(
                    SERVICE,
                    NAMESPACE,
                    {
                        "spec": {
                            "template": {"spec": {"containers": [{"name": "app", "image": image}]}}
                        }
                    },
                )
                kubectl: dict[str, float | int] = {}
                waiter = threading.Thread(target=kubectl_wait, args=(kubeconfig, kubectl))
                waiter.start()
                event = asyncio.run(trigger_wait(image))
                ours = time.monotonic() - patched
                waiter.join()
                theirs = float(kubectl["end"]) - patched
                row = {
                    "kind": kind,
                    "status": event["status"],
                    "kubectl_exit": kubectl["code"],
                    "ours_s": round(ours, 3),
                    "kubectl_s": round(theirs, 3),
                    "extra_s": round(ours - theirs, 3),
                    "requests": event["details"].get("requests"),
                    "kubectl_error": kubectl.get("stderr"),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                if event["status"] == "success":
                    current = image
                else:
                    apps.patch_namespaced_deployment(
                        SERVICE,
                        NAMESPACE,
                        {
                            "spec": {
                                "template": {
                                    "spec": {"containers": [{"name": "app", "image": current}]}
                                }
                            }
                        },
                    )
                    asyncio.run(trigger_wait(current))
            print("summary:")
            compared = [
                r
                for r in rows
                if not r.get("kubectl_error") or "progress deadline" in str(r["kubectl_error"])
            ]
            for kind in ("short", "long", "failing"):
                subset = [r for r in rows if r["kind"] == kind]
                if not subset:
                    continue
                pairs = [r for r in subset if r in compared]
                kubectl_part = (
                    f"median_kubectl={statistics.median(r['kubectl_s'] for r in pairs):.3f}s "
                    f"median_extra={statistics.median(r['extra_s'] for r in pairs):+.3f}s "
                    if pairs
                    else "kubectl=unavailable "
                )
                print(
                    f"  {kind:8s} rollouts={len(subset)} median_ours={statistics.median(r['ours_s'] for r in subset):.3f}s "
                    + kubectl_part
                    + f"requests_per_rollout={statistics.median(r['requests'] for r in subset):.0f}"
                )
            if compared:
                extra = statistics.median(r["extra_s"] for r in compared)
                print(
                    f"  overall median extra latency {extra:+.3f}s (target <= +0.200s): {'met' if extra <= 0.2 else 'NOT met'}"
                )
            else:
                print(f"  kubectl gave no answer to compare with: {rows[0].get('kubectl_error')!r}")


if __name__ == "__main__":
    main()
