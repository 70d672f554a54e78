"""Read docker-compose.yaml the way ``docker compose`` does: `.env` values, then interpolation.

No Docker engine runs here, so the stack tests read the files themselves:

- :func:`read_env_file` parses a dotenv file with Compose's rules (``KEY=VALUE``; single quotes
  literal; double quotes with ``\\n`` escapes; ``#`` comments on their own line or after a space);
- :func:`interpolate` applies Compose interpolation (``${VAR}``, ``${VAR:-default}``,
  ``${VAR-default}``, ``${VAR:?message}``, ``${VAR?message}``, ``$VAR``, ``$$`` for a literal ``$``);
- :func:`load_compose` returns the interpolated model, with YAML merge keys resolved.

The Compose Specification schema in ``schema/compose-spec.json`` is the one the PyPI package
check-jsonschema 0.39.0 ships (sha256 d549057e...10e64, Apache-2.0, license beside it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA_FILE = Path(__file__).resolve().parent / "schema" / "compose-spec.json"

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A required variable is missing (``${VAR:?message}``) or a reference is malformed."""


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :]
        key, sep, raw = stripped.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key):
            raise ValueError(f"{path}:{number}: not KEY=VALUE: {line!r}")
        raw = raw.strip()
        if raw.startswith("'"):
            end = raw.find("'", 1)
            if end < 0:
                raise ValueError(f"{path}:{number}: unterminated single quote")
            values[key] = raw[1:end]
        elif raw.startswith('"'):
            end = raw.find('"', 1)
            while end > 0 and raw[end - 1] == "\\":
                end = raw.find('"', end + 1)
            if end < 0:
                raise ValueError(f"{path}:{number}: unterminated double quote")
            values[key] = raw[1:end].replace("\\n", "\n").replace('\\"', '"')
        else:
            values[key] = re.split(r"\s+#", raw, maxsplit=1)[0].rstrip()
    return values


def interpolate(value: Any, env: Mapping[str, str], where: str = "") -> Any:
    """Interpolate every string of a parsed YAML value."""
    if isinstance(value, dict):
        return {key: interpolate(item, env, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env, f"{where}[{index}]") for index, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        current = env.get(name)
        unset_or_empty = not current
        if op in (":-", "-"):
            use_default = unset_or_empty if op == ":-" else current is None
            return interpolate(arg, env, where) if use_default else str(current)
        if op in (":?", "?"):
            missing = unset_or_empty if op == ":?" else current is None
            if missing:
                raise InterpolationError(f"{where}: required variable {name} is missing: {arg}")
            return str(current)
        if op in (":+", "+"):
            present = not unset_or_empty if op == ":+" else current is not None
            return interpolate(arg, env, where) if present else ""
        return current or ""

    return _VAR.sub(substitute, value)


def required_variables(text: str) -> set[str]:
    """Variables referenced with ``:?`` or ``?`` (compose refuses to start without them)."""
    return {m.group("braced") for m in _VAR.finditer(text) if m.group("op") in (":?", "?")}


def referenced_variables(text: str) -> set[str]:
    return {
        m.group("braced") or m.group("bare") for m in _VAR.finditer(text) if not m.group("escaped")
    }


def raw_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def load_compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose model as ``docker compose config`` would see it with ``env`` (default: .env.example)."""
    values = read_env_file(ENV_EXAMPLE) if env is None else env
    model: dict[str, Any] = interpolate(raw_compose(), values)
    return model


@lru_cache(maxsize=1)
def compose_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict (list or mapping form)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) for item in raw)
        return {key: value for key, value in pairs}
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def service_env_files(service: Mapping[str, Any]) -> list[Path]:
    raw = service.get("env_file") or []
    items = [raw] if isinstance(raw, str | dict) else raw
    paths = []
    for item in items:
        path = item["path"] if isinstance(item, dict) else item
        paths.append(ROOT / path)
    return paths
