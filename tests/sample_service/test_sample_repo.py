"""The demo's git repository and what each of its scenarios does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest
import yaml
from defusedxml import ElementTree

from sandbox.sample_repo import (
    HISTORY,
    SampleRepoError,
    apply_edits,
    create_repository,
    read_service_tree,
)
from tests.sample_service.support import ROOT, SERVICE_TREE, decoded, result_of, run_step

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _git(repository, *args: str) -> str:
    completed = subprocess.run(
        ["git", "--git-dir", str(repository), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return completed.stdout.strip()


def test_history_and_tags(sample_repo) -> None:
    tags, branches, repository = sample_repo.tags, sample_repo.branches, sample_repo.path
    assert set(tags) == {
        "demo/base",
        "demo/good",
        "demo/tests-fail",
        "demo/bad-release",
        "v1.0.0",
        "v1.1.0",
    }
    assert set(branches) == {"main", "feature/plain-names", "release/1.2"}
    assert _git(repository, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert branches["main"] == tags["demo/good"] == tags["v1.1.0"]
    assert tags["demo/base"] == tags["v1.0.0"]
    assert branches["feature/plain-names"] == tags["demo/tests-fail"]
    assert branches["release/1.2"] == tags["demo/bad-release"]
    main_log = _git(repository, "rev-list", "main").split()
    assert len(main_log) == 3
    assert main_log[-1] == tags["demo/base"]
    for tag in ("demo/tests-fail", "demo/bad-release"):
        assert _git(repository, "rev-parse", f"{tag}^") == tags["demo/good"]
    versions = {
        tag: _git(repository, "show", f"{tag}:hello_api/__init__.py").splitlines()[-1]
        for tag in ("demo/base", "demo/good", "demo/bad-release")
    }
    assert versions == {
        "demo/base": '__version__ = "1.0.0"',
        "demo/good": '__version__ = "1.1.0"',
        "demo/bad-release": '__version__ = "1.2.0"',
    }
    mode = _git(repository, "ls-tree", "demo/base", "ci/build.sh").split()[0]
    assert mode == "100755"
    _git(repository, "fsck", "--strict", "--no-progress")


def test_commit_ids_do_not_depend_on_where_or_when(sample_repo, tmp_path) -> None:
    dates = _git(sample_repo.path, "log", "--format=%ad %cd", "--date=iso-strict", "demo/base")
    assert dates == "2026-11-02T09:30:00+08:00 2026-11-02T09:30:00+08:00"
    elsewhere = create_repository(tmp_path / "elsewhere")
    assert elsewhere.tags == sample_repo.tags
    assert elsewhere.branches == sample_repo.branches
    again = create_repository(tmp_path / "elsewhere")
    assert again.tags == sample_repo.tags
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == ["hello-api.git"]


def test_base_commit_is_the_service_tree(sample_repo) -> None:
    listed = set(_git(sample_repo.path, "ls-tree", "-r", "--name-only", "demo/base").splitlines())
    assert listed == set(read_service_tree())
    assert "hello_api/server.py" in listed
    assert not any("__pycache__" in path or path.endswith(".pyc") for path in listed)


def test_generated_files_stay_out(tmp_path) -> None:
    tree = tmp_path / "service"
    shutil.copytree(SERVICE_TREE, tree)
    (tree / "hello_api" / "__pycache__").mkdir(exist_ok=True)
    (tree / "hello_api" / "__pycache__" / "server.cpython-311.pyc").write_bytes(b"\0")
    (tree / "BUILD_INFO.json").write_text("{}", encoding="utf-8")
    (tree / ".coverage").write_bytes(b"")
    assert set(read_service_tree(tree)) == set(read_service_tree(SERVICE_TREE))


def test_an_edit_that_no_longer_fits_fails_loudly() -> None:
    tree = read_service_tree()
    edit = HISTORY[1].changes[0].edits[0]
    moved = {**tree, edit.path: (b"# rewritten\n", False)}
    with pytest.raises(SampleRepoError, match="expected the text once, found it 0 times"):
        apply_edits(moved, [edit])


def test_command_line_prints_the_summary(sample_repo, tmp_path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sandbox.sample_repo", str(tmp_path / "git")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    summary = json.loads(completed.stdout)
    assert summary["repository"] == str(tmp_path / "git" / "hello-api.git")
    assert summary["url"] == (tmp_path / "git" / "hello-api.git").as_uri()
    assert summary["tags"] == sample_repo.tags
    assert summary["scenarios"] == {
        "good": sample_repo.tags["demo/good"],
        "tests-fail": sample_repo.tags["demo/tests-fail"],
        "bad-release": sample_repo.tags["demo/bad-release"],
    }


def test_tests_fail_commit_fails_its_tests(hello_api, checkout) -> None:
    run = run_step(hello_api.steps["test"].command, checkout("demo/tests-fail"))
    assert run.returncode != 0
    suite = ElementTree.fromstring(decoded(result_of(run.results, "junit"))).find("testsuite")
    assert suite is not None
    assert int(suite.get("failures")) >= 1
    failing = {
        case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None
    }
    assert "test_greets_in_chinese" in failing
    assert result_of(run.results, "coverage")["format"] == "cobertura"


def _production_env(workspace) -> dict[str, str]:
    """The app container's environment from the commit's own deployment manifest."""
    documents = yaml.safe_load_all(
        (workspace / "deploy" / "deployment.yaml").read_text(encoding="utf-8")
    )
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "app"
    ]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["ENVIRONMENT"] == "production"
    return env


def _ready_within(hello, seconds: float) -> tuple[bool, bytes]:
    deadline = time.monotonic() + seconds
    while True:
        answer = hello.get("/healthz")
        if answer.status == 200:
            return True, answer.body
        if time.monotonic() > deadline:
            return False, answer.body
        time.sleep(0.1)


def test_bad_release_passes_ci_but_never_becomes_ready(hello_api, checkout, service) -> None:
    workspace = checkout("demo/bad-release")
    tests = run_step(hello_api.steps["test"].command, workspace)
    assert tests.returncode == 0, tests.stdout[-2000:]
    coverage = ElementTree.fromstring(decoded(result_of(tests.results, "coverage")))
    assert float(coverage.get("line-rate")) * 100 >= hello_api.quality.min_coverage
    scan = run_step(hello_api.steps["scan"].command, workspace)
    assert scan.returncode == 0
    bandit = json.loads(decoded(result_of(scan.results, "findings", tool="bandit")))
    assert not [r for r in bandit["results"] if r["issue_severity"] == "HIGH"]

    env = _production_env(workspace)
    broken = service(workspace, {**env, "SITE_NAME": "site-b"})
    ready, body = _ready_within(broken, 2.0)
    assert not ready
    assert body.startswith(b"not ready: CORS_ALLOWED_ORIGINS")
    assert broken.get("/livez").status == 200
    assert broken.get("/hello").status == 200

    configured = service(workspace, {**env, "CORS_ALLOWED_ORIGINS": "https://www.example.com"})
    assert _ready_within(configured, 5.0) == (True, b"ok")


def test_good_commit_is_ready_in_production(checkout, service) -> None:
    workspace = checkout("demo/good")
    hello = service(workspace, _production_env(workspace))
    assert _ready_within(hello, 5.0) == (True, b"ok")
