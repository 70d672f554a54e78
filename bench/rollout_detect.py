"""How fast does the rollout trigger notice a Deployment finishing or failing, next to kubectl?

On one stand-in site (in this process, HTTPS on), each rollout patches the Deployment's image and
then waits for it two ways at the same time: ``RolloutWaitTrigger`` (our watch-based trigger) and
``kubectl rollout status`` through the site's HTTPS kubeconfig (client-go sends its bearer token
only over HTTPS). A listener on the site's object store notes the moment the Deployment becomes
complete by kubectl's own rule (observed generation, updated, no old replicas, all updated
available) or fails with ProgressDeadlineExceeded. Detection latency is the time from that moment
to each waiter's answer. Rollouts of 2 replicas (short) and 6 replicas (long) show whether the
trigger's API requests grow with the rollout's length; a version that never becomes ready shows
detection of a failed rollout. kubectl's requests are counted from its ``-v=6`` log; its first
run also fetches API discovery, which it caches for the later ones.

Target: median detection latency <= kubectl's + 0.2 s; requests per rollout flat across lengths.

Usage: ``python bench/rollout_detect.py [--rounds N]``; prints one line per rollout and a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow-test"))
# The trigger's lifecycle lines would bury the figures; warnings (recovered trouble) still show.
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

KUBECTL = "/usr/bin/kubectl"
TARGET_EXTRA_SECONDS = 0.2
# One line per API request at -v=6: `round_trippers.go:560] GET https://... 200 OK in 1 milliseconds`
# (newer client-go logs `"Response" verb="GET" url=...` instead).
REQUEST_LOG = re.compile(r'round_trippers\.go:\d+\] ("Response" |[A-Z]+ https?://)')


def rollout_outcome(deployment: dict[str, Any]) -> str | None:
    """``complete`` or ``failed`` as ``kubectl rollout status`` decides it; None while waiting."""
    status = deployment.get("status") or {}
    generation = int(deployment.get("metadata", {}).get("generation") or 0)
    if generation > int(status.get("observedGeneration") or 0):
        return None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == (
            "ProgressDeadlineExceeded"
        ):
            return "failed"
    desired = deployment.get("spec", {}).get("replicas")
    updated = int(status.get("updatedReplicas") or 0)
    if desired is not None and updated < int(desired):
        return None
    if int(status.get("replicas") or 0) > updated:
        return None
    if int(status.get("availableReplicas") or 0) < updated:
        return None
    return "complete"


class OutcomeClock:
    """Store listener (on the site's loop): when did the armed rollout first complete or fail?"""

    def __init__(self, namespace: str, name: str, container: str) -> None:
        self.namespace = namespace
        self.name = name
        self.container = container
        self.image: str | None = None
        self.at: float | None = None
        self.outcome: str | None = None

    def arm(self, image: str) -> None:
        self.image, self.at, self.outcome = image, None, None

    def __call__(self, change: Any) -> None:
        if self.at is not None or change.resource.kind != "Deployment":
            return
        meta = change.obj.get("metadata", {})
        if (meta.get("namespace"), meta.get("name")) != (self.namespace, self.name):
            return
        containers = change.obj["spec"]["template"]["spec"]["containers"]
        if not any(c["name"] == self.container and c["image"] == self.image for c in containers):
            return
        outcome = rollout_outcome(change.obj)
        if outcome is not None:
            self.at, self.outcome = time.monotonic(), outcome


def start_kubectl(kubeconfig: Path, home: Path) -> subprocess.Popen[str]:
    """``kubectl rollout status`` with request logging (-v=6) to count its API requests."""
    return subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            str(kubeconfig),
            "-v=6",
            "-n",
            "prod",
            "rollout",
            "status",
            "deployment/hello-api",
            "--timeout=90s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
    )


def kubectl_wait(proc: subprocess.Popen[str], result: dict[str, Any]) -> None:
    """Note when kubectl answers, its exit code, its API requests and its error line."""
    _, stderr = proc.communicate()
    result["end"] = time.monotonic()
    result["code"] = proc.returncode
    result["requests"] = sum(bool(REQUEST_LOG.search(line)) for line in stderr.splitlines())
    if proc.returncode:
        errors = [line for line in stderr.splitlines() if line.startswith("error")]
        result["error"] = (errors[-1] if errors else stderr.strip()[-300:])[:300]


async def trigger_wait(image: str) -> tuple[dict[str, Any], float]:
    """Run the trigger until its event; return the event and when it arrived."""
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
        return dict(event.payload), time.monotonic()
    raise RuntimeError("trigger ended without an event")


def kubectl_version() -> str:
    proc = subprocess.run(
        [KUBECTL, "version", "--client", "-o", "json"], capture_output=True, text=True, check=False
    )
    try:
        return str(json.loads(proc.stdout)["clientVersion"]["gitVersion"])
    except (ValueError, KeyError):
        return "unknown"


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="rollouts per kind (short, long)")
    args = parser.parse_args()
    # On SIGTERM (e.g. a time limit) unwind, so the site stops and kills its pod processes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    from kubernetes import client, config

    from sandbox.kube.testing import run_site
    from tests.release.world import NAMESPACE, SERVICE, build_images, deployment, service_object

    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        images = build_images(tmp / "images")
        kubeconfig = tmp / "kubeconfig"
        with run_site(
            "site-a",
            images_dir=tmp / "images",
            namespaces=(NAMESPACE,),
            kubeconfig_path=kubeconfig,
            tls=True,
        ) as site:
            os.environ["AIRFLOW_CONN_KUBERNETES_BENCH"] = json.dumps(
                {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}
            )
            clock = OutcomeClock(NAMESPACE, SERVICE, "app")
            site.call(site.site.store.add_listener, clock)
            configuration = client.Configuration()
            config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
            api = client.ApiClient(configuration)
            apps = client.AppsV1Api(api)
            client.CoreV1Api(api).create_namespaced_service(NAMESPACE, service_object())
            apps.create_namespaced_deployment(NAMESPACE, deployment("site-a", images["v1"]))
            plan = [("short", 2, images["v2" if i % 2 == 0 else "v1"]) for i in range(args.rounds)]
            plan += [("long", 6, images["v6" if i % 2 == 0 else "v2"]) for i in range(args.rounds)]
            plan.append(("failing", 2, images["never-ready"]))
            current = images["v1"]
            asyncio.run(trigger_wait(current))

            def set_image(image: str) -> None:
                template = {"spec": {"containers": [{"name": "app", "image": image}]}}
                apps.patch_namespaced_deployment(
                    SERVICE, NAMESPACE, {"spec": {"template": template}}
                )

            rows = []
            for kind, replicas, image in plan:
                apps.patch_namespaced_deployment(
                    SERVICE, NAMESPACE, {"spec": {"replicas": replicas}}
                )
                asyncio.run(trigger_wait(current))  # settle the scale change first
                site.call(clock.arm, image)
                patched = time.monotonic()
                set_image(image)
                kubectl: dict[str, Any] = {}
                proc = start_kubectl(site.https_kubeconfig_path, tmp)
                waiter = threading.Thread(target=kubectl_wait, args=(proc, kubectl), daemon=True)
                waiter.start()
                try:
                    event, ours_at = asyncio.run(trigger_wait(image))
                    waiter.join()
                finally:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                outcome_at = clock.at
                kubectl_answered = (
                    not kubectl.get("error") or "progress deadline" in kubectl["error"]
                )
                row = {
                    "kind": kind,
                    "outcome": clock.outcome,
                    "ours": event["status"],
                    "kubectl_exit": kubectl["code"],
                    "rollout_s": None if outcome_at is None else round(outcome_at - patched, 3),
                    "ours_latency_s": None
                    if outcome_at is None
                    else round(ours_at - outcome_at, 3),
                    "kubectl_latency_s": (
                        None
                        if outcome_at is None or not kubectl_answered
                        else round(kubectl["end"] - outcome_at, 3)
                    ),
                    "ours_requests": event["details"].get("requests"),
                    "kubectl_requests": kubectl["requests"],
                    "kubectl_error": kubectl.get("error"),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                if event["status"] == "success":
                    current = image
                else:
                    set_image(current)
                    asyncio.run(trigger_wait(current))

    print(
        f"summary: stand-in site in this process (speed 1, HTTPS), {len(rows)} rollouts, "
        f"kubectl {kubectl_version()} rollout status measured in the same rollouts"
    )
    for kind in ("short", "long", "failing"):
        subset = [r for r in rows if r["kind"] == kind]
        if not subset:
            continue
        ours = median([r["ours_latency_s"] for r in subset if r["ours_latency_s"] is not None])
        theirs = median(
            [r["kubectl_latency_s"] for r in subset if r["kubectl_latency_s"] is not None]
        )
        print(
            f"  {kind:8s} rollouts={len(subset)} median_rollout={seconds(median([r['rollout_s'] for r in subset if r['rollout_s'] is not None]))} "
            f"median_latency ours={seconds(ours)} kubectl={seconds(theirs)} "
            f"requests_per_rollout ours={statistics.median(r['ours_requests'] for r in subset):.0f} "
            f"kubectl={statistics.median(r['kubectl_requests'] for r in subset):.0f}"
        )
    ours = median([r["ours_latency_s"] for r in rows if r["ours_latency_s"] is not None])
    theirs = median([r["kubectl_latency_s"] for r in rows if r["kubectl_latency_s"] is not None])
    if ours is None or theirs is None:
        errors = {r["kubectl_error"] for r in rows if r["kubectl_error"]}
        print(
            f"  no latency to compare (ours={seconds(ours)}, kubectl={seconds(theirs)}): {errors}"
        )
    else:
        met = ours <= theirs + TARGET_EXTRA_SECONDS
        print(
            f"  overall median detection latency ours={ours:.3f}s kubectl={theirs:.3f}s "
            f"(target ours <= kubectl + {TARGET_EXTRA_SECONDS:.3f}s): {'met' if met else 'NOT met'}"
        )
    by_kind = {
        kind: statistics.median(r["ours_requests"] for r in rows if r["kind"] == kind)
        for kind in ("short", "long")
        if any(r["kind"] == kind for r in rows)
    }
    if len(by_kind) == 2:
        flat = by_kind["long"] <= by_kind["short"]
        print(
            f"  requests per rollout short={by_kind['short']:.0f} long={by_kind['long']:.0f} "
            f"(target: no growth with rollout length): {'met' if flat else 'NOT met'}"
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; the site and its pods were stopped", file=sys.stderr)
        sys.exit(130)
