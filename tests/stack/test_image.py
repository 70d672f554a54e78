"""The Dockerfile builds on the official Airflow image with the same lock the README commands use."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.stack.compose import ROOT, load_compose

BASE_IMAGE = "apache/airflow:3.3.2-python3.11"


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    buffer = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        joined.append(buffer + stripped)
        buffer = ""
    out = []
    for item in joined:
        word, _, rest = item.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for instruction, args in _instructions(ROOT / "Dockerfile"):
        if instruction == "FROM":
            base, _, name = args.partition(" AS ")
            current = [("FROM", base.strip())]
            stages[name.strip() or base.strip()] = current
        else:
            current.append((instruction, args))
    return stages


def test_images_start_from_the_pinned_official_airflow_image() -> None:
    stages = _stages()
    assert set(stages) == {"wheels", "airflow", "sandbox"}
    assert stages["wheels"][0] == ("FROM", BASE_IMAGE)
    assert stages["airflow"][0] == ("FROM", BASE_IMAGE)
    assert stages["sandbox"][0] == ("FROM", "airflow")
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    version = BASE_IMAGE.split(":")[1].split("-")[0]
    assert re.search(rf"^apache-airflow=={re.escape(version)}$", lock, re.MULTILINE)
    assert "python3.11" in BASE_IMAGE


def test_dockerfile_installs_the_lock_the_readme_commands_install() -> None:
    airflow = _stages()["airflow"]
    copies = {
        shlex.split(args)[-2]: shlex.split(args)[-1]
        for op, args in airflow
        if op == "COPY" and "--from" not in args
    }
    installed = [args for op, args in airflow if op == "RUN" and "pip install" in args]
    assert len(installed) == 1
    words = shlex.split(installed[0])
    lock_in_image = words[words.index("-r") + 1]
    assert copies["requirements.lock"] == lock_in_image
    wheels = " ".join(args for op, args in _stages()["wheels"] if op in ("COPY", "RUN"))
    assert (
        "COPY" not in wheels
        and "requirements.lock" in wheels
        and "-r /tmp/requirements.lock" in wheels
    )

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^make (\w+)", readme, re.MULTILINE)
    assert {"demo", "test"} <= set(commands)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test"):
        assert re.search(rf"^{target}: setup\b", makefile, re.MULTILINE), target
    assert re.search(r"^setup:\n\t@bash scripts/bootstrap.sh$", makefile, re.MULTILINE)
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text(encoding="utf-8")
    assert re.search(r'uv" pip sync [^\n]*"\$\{ROOT\}/requirements\.lock"', bootstrap), bootstrap


def test_image_carries_the_project_code_on_the_python_path() -> None:
    airflow = _stages()["airflow"]
    copied = {shlex.split(args)[-2].rstrip("/") for op, args in airflow if op == "COPY"}
    assert {"dags", "operators", "include", "plugins"} <= copied
    assert "sandbox" not in copied
    env = " ".join(args for op, args in airflow if op == "ENV")
    assert "PYTHONPATH=/opt/airflow" in env
    sandbox = _stages()["sandbox"]
    assert any(op == "COPY" and args.split()[-2].rstrip("/") == "sandbox" for op, args in sandbox)


def test_compose_builds_the_dockerfile_targets() -> None:
    services = load_compose()["services"]
    targets = {service["build"]["target"] for service in services.values() if "build" in service}
    assert targets == {"airflow", "sandbox"}
    assert all(
        service["build"]["context"] == "." for service in services.values() if "build" in service
    )
