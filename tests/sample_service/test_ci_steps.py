"""The sample service's CI steps, run as the catalog says, in a checkout of its repository."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from defusedxml import ElementTree

from tests.sample_service.support import decoded, result_of, run_step

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPOSITORY = "registry.local:5000/hello-api"


def _assert_clean(workspace: Path) -> None:
    """A step leaves nothing behind in the checkout (no bytecode, caches or reports)."""
    status = subprocess.run(
        ["git", "-C", str(workspace), "status", "--porcelain", "--ignored"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert status.stdout == ""


def _build(hello_api, workspace: Path, store: Path):
    return run_step(
        hello_api.steps["build"].command,
        workspace,
        {"IMAGE_STORE": str(store), "IMAGE_REPOSITORY": REPOSITORY},
    )


def test_build_is_reproducible_and_published(hello_api, sample_repo, checkout, tmp_path) -> None:
    commit = sample_repo.tags["demo/good"]
    store = tmp_path / "images"
    workspace = checkout("demo/good", "one")
    first = _build(hello_api, workspace, store)
    assert first.returncode == 0, first.stderr
    _assert_clean(workspace)
    (image,) = first.results
    assert set(image) == {"kind", "image", "digest", "commit"}
    digest = str(image["digest"])
    assert digest.startswith("sha256:") and len(digest) == 71
    assert image["image"] == f"{REPOSITORY}@{digest}"
    assert image["commit"] == commit

    artifact = store / f"sha256-{digest.removeprefix('sha256:')}.tar.gz"
    assert "sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in store.iterdir()) == [artifact.name]

    # Another workspace, another moment, the same commit: the same bytes.
    second = _build(hello_api, checkout("demo/good", "two"), store)
    assert second.returncode == 0, second.stderr
    assert second.results == first.results
    assert sorted(p.name for p in store.iterdir()) == [artifact.name]

    header = artifact.read_bytes()[:10]
    assert header[3] & 0x08 == 0, "gzip header names the file"
    assert header[4:8] == b"\0\0\0\0", "gzip header carries a time"
    commit_time = subprocess.run(
        ["git", "-C", str(workspace), "show", "-s", "--format=%ct", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tarfile.open(artifact) as archive:
        members = archive.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
        assert {m.mtime for m in members} == {int(commit_time)}
        assert {m.mode for m in members if m.isfile()} == {0o644, 0o755}
        assert "./hello_api/server.py" in names
        assert "./ci/build.sh" in names
        build_info = json.load(archive.extractfile("./BUILD_INFO.json"))
    assert build_info == {"service": "hello-api", "version": "1.1.0", "commit": commit}


def test_artifact_runs_where_it_is_extracted(
    hello_api, sample_repo, checkout, service, tmp_path
) -> None:
    store = tmp_path / "images"
    build = _build(hello_api, checkout("demo/good"), store)
    assert build.returncode == 0, build.stderr
    digest = str(build.results[0]["digest"]).removeprefix("sha256:")
    unpacked = tmp_path / "unpacked"
    with tarfile.open(store / f"sha256-{digest}.tar.gz") as archive:
        archive.extractall(unpacked, filter="data")

    hello = service(unpacked, {"ENVIRONMENT": "production"})
    assert hello.get("/healthz").body == b"ok"
    version = hello.get("/version").json()
    assert version["commit"] == sample_repo.tags["demo/good"]
    assert version["version"] == "1.1.0"


def test_build_refuses_an_unusable_repository_name(hello_api, checkout, tmp_path) -> None:
    workspace = checkout("demo/good")
    run = run_step(
        hello_api.steps["build"].command,
        workspace,
        {"IMAGE_STORE": str(tmp_path / "images"), "IMAGE_REPOSITORY": 'registry/x", "digest": "y'},
    )
    assert run.returncode != 0
    assert run.results == []
    assert not (tmp_path / "images").exists()


def test_test_step_reports_junit_and_coverage(hello_api, checkout) -> None:
    workspace = checkout("demo/good")
    run = run_step(hello_api.steps["test"].command, workspace)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    assert [r["kind"] for r in run.results] == ["junit", "coverage"]

    suite = ElementTree.fromstring(decoded(result_of(run.results, "junit"))).find("testsuite")
    assert suite is not None
    assert int(suite.get("tests")) >= 12
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")

    coverage_result = result_of(run.results, "coverage", format="cobertura")
    coverage = ElementTree.fromstring(decoded(coverage_result))
    assert coverage.tag == "coverage"
    assert float(coverage.get("line-rate")) * 100 >= hello_api.quality.min_coverage
    files = {c.get("filename") for c in coverage.iter("class")}
    assert {"config.py", "greetings.py", "server.py"} <= files
    _assert_clean(workspace)


def test_scan_step_reports_real_findings(hello_api, checkout) -> None:
    workspace = checkout("demo/good")
    run = run_step(hello_api.steps["scan"].command, workspace)
    assert run.returncode == 0, run.stderr

    sarif = json.loads(decoded(result_of(run.results, "findings", tool="ruff", format="sarif")))
    assert sarif["version"] == "2.1.0"
    rules = {r["ruleId"] for r in sarif["runs"][0]["results"]}
    assert {"S101", "S104", "S110", "S311", "BLE001"} <= rules
    scanned = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in sarif["runs"][0]["results"]
    }
    assert all("/hello_api/" in uri for uri in scanned)

    bandit = json.loads(
        decoded(result_of(run.results, "findings", tool="bandit", format="bandit-json"))
    )
    assert bandit["errors"] == []
    found = {(r["test_id"], r["issue_severity"]) for r in bandit["results"]}
    assert {("B101", "LOW"), ("B110", "LOW"), ("B311", "LOW"), ("B104", "MEDIUM")} <= found
    severities = [severity.lower() for _, severity in found]
    limits = hello_api.quality.max_findings
    for severity in ("critical", "high", "medium", "low"):
        assert severities.count(severity) <= limits[severity], severity
    _assert_clean(workspace)


def test_scan_step_fails_when_an_analyser_cannot_run(hello_api, checkout) -> None:
    workspace = checkout("demo/good")
    (workspace / "ci" / "ruff.toml").write_text("[lint]\nselect = 42\n", encoding="utf-8")
    run = run_step(hello_api.steps["scan"].command, workspace)
    assert run.returncode != 0
    assert [r["tool"] for r in run.results] == ["bandit"]
