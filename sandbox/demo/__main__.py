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
import signal
import sys
import time
from pathlib import Path
from typing import Any

from sandbox.demo.runner import failure_reasons, run_pipeline, stage_summary
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
    from include.catalog import CatalogError, load_catalog

    try:
        load_catalog().service(SERVICE)
    except (CatalogError, KeyError) as err:
        print(f"== the demo could not run: {err}", file=sys.stderr)
        return 2
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
        outcome = run_pipeline(stack, commit, workdir, echo=lambda line: print(line, flush=True))
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
    for stage, state, duration in stage_summary(outcome["run_id"]):
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
    print(f"task logs        {outcome['log']}  (every task's log, pod output included)")
    print(
        f"records          AIRFLOW_CONN_SRE_RECORDS={stack.env.get('AIRFLOW_CONN_SRE_RECORDS', '')} "
        f".venv/bin/python -m operators.records history {SERVICE}"
    )
    print(f"stand-in logs    {workdir / 'logs'}  (their warnings and errors)")
    print(
        f"result           pipeline {outcome['state']} ({scenario_verdict(scenario, outcome, before, after)})"
    )


def scenario_verdict(
    scenario: str, outcome: dict[str, Any], before: dict[str, str], after: dict[str, str]
) -> str:
    """Whether the run ended as the scenario means to show: where it stopped and what changed."""
    stages = {stage: state for stage, state, _ in stage_summary(outcome["run_id"])}
    changed = before != after
    if scenario == "good":
        ok = outcome["state"] == "success" and changed and after["site-a"] == after["site-b"]
        expected = "success, both sites on the new image"
    elif scenario == "tests-fail":
        ok = outcome["state"] == "failed" and stages.get("test") == "failed" and not changed
        expected = "failed at the test stage, no site changed"
    else:
        ok = (
            outcome["state"] == "failed"
            and stages.get("test") == "success"
            and stages.get("release") == "failed"
            and not changed
        )
        expected = "failed in the release and rolled back, both sites on the old image"
    return f"{'as' if ok else 'NOT as'} this scenario expects: {expected}"


def _short(image: str) -> str:
    if "@sha256:" in image:
        name, digest = image.split("@sha256:", 1)
        return f"{name.rsplit('/', 1)[-1]}@sha256:{digest[:12]}"
    return image


if __name__ == "__main__":
    raise SystemExit(main())
