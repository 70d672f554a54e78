"""The service catalog: the shipped file is valid; every kind of mistake is named clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from include.catalog import DEFAULT_CATALOG_PATH, CatalogError, load_catalog

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_catalog_has_both_sites_and_the_sample_service():
    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    assert {site.role for site in catalog.sites} == {"primary", "secondary"}
    assert catalog.release_order()[0].role == "secondary"
    assert "hello-api" in catalog.services
    assert len(catalog.services) >= 2
    hello = catalog.service("hello-api")
    assert hello.steps["build"].command
    assert hello.deploy.namespace == "prod"
    assert hello.release.weight_steps == (5, 25, 50)


def _write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(DEFAULT_CATALOG_PATH.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _set(path: list, value):
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: list):
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            _set(["services", 0, "name"], "Hello_API"),
            ["service 'Hello_API'", "field name", "DNS-1123"],
        ),
        (
            _delete(["services", 1, "steps", "build", "image"]),
            ["service 'order-service'", "steps.build", "'image'", "add it"],
        ),
        (
            _set(["services", 0, "deploy", "replicas"], "two"),
            ["service 'hello-api'", "deploy.replicas", "integer"],
        ),
        (
            _set(["services", 0, "release", "weight_steps"], [50, 25]),
            ["service 'hello-api'", "weight_steps", "strictly increasing"],
        ),
        (
            _set(["services", 0, "steps", "build", "resources", "memory"], "lots"),
            ["steps.build.resources.memory", "quantity"],
        ),
        (
            _set(["services", 0, "colour"], "blue"),
            ["service 'hello-api'", "unknown field", "'colour'", "allowed here"],
        ),
        (
            _set(["sites", 1, "role"], "primary"),
            ["field sites", "exactly one site must be 'primary'"],
        ),
        (
            _set(["sites", 0, "role"], "leader"),
            ["site 'site-a'", "field role", "'leader' is not allowed", "primary"],
        ),
        (_set(["timezone"], "Mars/Olympus"), ["field timezone", "IANA"]),
        (
            _set(["services", 0, "repository"], "ftp://example.com/x.git"),
            ["field repository", "git URL"],
        ),
        (_set(["services", 1, "name"], "hello-api"), ["duplicate service name 'hello-api'"]),
        (
            _set(["services", 0, "repository"], "${SRE_SURELY_UNSET_VARIABLE}/x.git"),
            ["SRE_SURELY_UNSET_VARIABLE is not set"],
        ),
    ],
)
def test_malformed_catalog_names_file_service_field_and_fix(tmp_path, mutate, expected):
    path = _write(tmp_path, mutate)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("timezone: UTC\nsites: [\n  - name: a\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"line \d+, column \d+: not valid YAML"):
        load_catalog(path)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(CatalogError, match="cannot read the service catalog"):
        load_catalog(tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="must be a mapping"):
        load_catalog(path)


def test_environment_references_expand_with_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("SRE_GIT_BASE", "https://git.example.com/platform")
    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    assert (
        catalog.service("hello-api").repository == "https://git.example.com/platform/hello-api.git"
    )
    monkeypatch.delenv("SRE_GIT_BASE")
    catalog = load_catalog(DEFAULT_CATALOG_PATH)
    assert catalog.service("hello-api").repository == "file:///srv/git/hello-api.git"


def test_loading_is_cached_until_the_file_changes(tmp_path):
    path = _write(tmp_path, lambda data: None)
    first = load_catalog(path)
    assert load_catalog(path) is first
    path.write_text(path.read_text(encoding="utf-8") + "\n# touched\n", encoding="utf-8")
    import os

    os.utime(path, ns=(1, 1))
    assert load_catalog(path) is not first


def test_unknown_service_lookup_lists_known_ones():
    with pytest.raises(KeyError, match="hello-api"):
        load_catalog(DEFAULT_CATALOG_PATH).service("nope")


def test_cli_prints_problem_without_traceback(tmp_path):
    path = _write(tmp_path, _set(["services", 0, "name"], "Bad Name"))
    completed = subprocess.run(
        [sys.executable, "-m", "include.catalog", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "service 'Bad Name', field name" in completed.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "include.catalog"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "hello-api" in ok.stdout
