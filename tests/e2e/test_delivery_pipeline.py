"""The delivery pipeline end to end, as `make demo` runs it, on a shorter configuration.

Starts the local stack (two Kubernetes site stand-ins, the CI cluster stand-in, the gateway),
sends user traffic through the gateway, and runs ``delivery_pipeline`` with ``airflow dags test``
on real commits of the sample service's git repository:

- the good commit is built, tested, scanned and released to both sites with no failed request;
- the commit whose tests fail stops at the test stage, names the failing case and changes no site;
- the commit that never becomes ready in production is rolled back by the release on its own,
  with no failed user request and both sites back on the old image.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from include.catalog import DEFAULT_CATALOG_PATH

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from sandbox.demo.stack import LocalStack

    workdir = tmp_path_factory.mktemp("e2e")
    catalog = yaml.safe_load(DEFAULT_CATALOG_PATH.read_text(encoding="utf-8"))
    for service in catalog["services"]:
        service["release"].update(step_seconds=2, bake_seconds=2, weight_steps=[10, 50])
    catalog_path = workdir / "catalog.yaml"
    catalog_path.write_text(yaml.safe_dump(catalog), encoding="utf-8")
    saved = dict(os.environ)
    os.environ["SRE_CATALOG_PATH"] = str(catalog_path)
    local = LocalStack(workdir / "stack", speed=4.0)
    try:
        local.start(progress=lambda message: None)
        yield local
    finally:
        local.close()
        os.environ.clear()
        os.environ.update(saved)


def _run(stack, tag: str, name: str):
    from sandbox.demo.runner import failure_reasons, run_pipeline, stage_summary
    from sandbox.demo.stack import SERVICE, SITE_NAMES
    from sandbox.gateway.load import LoadGenerator

    before = {site: stack.deployment_image(site) for site in SITE_NAMES}
    workdir = stack.workdir / name
    (workdir / "logs").mkdir(parents=True)
    lines: list[str] = []
    with LoadGenerator(
        stack.proxy_url,
        host=f"{SERVICE}.prod",
        rate_per_s=20,
        max_requests=20 * 600,
        path="/hello?name=e2e",
        site_header="X-Served-By",
    ) as load:
        outcome = run_pipeline(stack, stack.repository_tag(tag), workdir, echo=lines.append)
        traffic = load.stop()
    after = {site: stack.deployment_image(site) for site in SITE_NAMES}
    stages = {stage: state for stage, state, _ in stage_summary(outcome["run_id"])}
    reasons = failure_reasons(Path(outcome["log"]))
    return outcome, stages, before, after, traffic, reasons, lines


def test_good_commit_is_released_to_both_sites_without_failed_requests(stack):
    outcome, stages, before, after, traffic, reasons, lines = _run(stack, "demo/good", "good")
    assert outcome["state"] == "success", (reasons, lines[-20:], outcome["log"])
    assert stages == {
        "build": "success",
        "test": "success",
        "scan": "success",
        "release": "success",
    }
    assert after["site-a"] == after["site-b"] != before["site-a"]
    assert after["site-a"].startswith("registry.local:5000/hello-api@sha256:")
    assert traffic.sent > 100
    assert traffic.failed == 0, traffic.first_failures
    assert set(traffic.by_site) == {"site-a", "site-b"}


def test_failing_tests_stop_the_pipeline_at_the_test_stage(stack):
    outcome, stages, before, after, traffic, reasons, lines = _run(
        stack, "demo/tests-fail", "tests-fail"
    )
    assert outcome["state"] == "failed"
    assert stages["build"] == "success"
    assert stages["test"] == "failed"
    assert stages["release"] in ("not reached", "not run")
    assert any("test_greets_in_chinese" in reason for reason in reasons), reasons
    assert after == before
    assert traffic.failed == 0


def test_release_that_never_becomes_ready_rolls_back_by_itself(stack):
    outcome, stages, before, after, traffic, reasons, lines = _run(
        stack, "demo/bad-release", "bad-release"
    )
    assert outcome["state"] == "failed"
    assert stages["test"] == "success"
    assert stages["scan"] == "success"
    assert stages["release"] == "failed"
    assert after == before, "both sites must end on the image they ran before"
    assert traffic.failed == 0, traffic.first_failures
