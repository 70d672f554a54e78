"""Service catalog: load, validate and look up services and sites.

The catalog is ``include/catalog.yaml`` (or the file named by ``SRE_CATALOG_PATH``). Loading
reads only that file and the JSON Schema next to it: no network, no database, so DAG files can
call it at parse time. Results are cached per file path and modification time.

A malformed catalog raises :class:`CatalogError` whose message names the file, the service and
the field, and says how to fix it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

INCLUDE_DIR = Path(__file__).resolve().parent
DEFAULT_CATALOG_PATH = INCLUDE_DIR / "catalog.yaml"
SCHEMA_PATH = INCLUDE_DIR / "schemas" / "catalog.schema.json"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class CatalogError(ValueError):
    """The catalog file is missing, unreadable or does not match the schema."""


@dataclass(frozen=True)
class Step:
    """One CI step run as a pod: image, command and resources."""

    image: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cpu: str | None = None
    memory: str | None = None
    timeout_minutes: int = 30


@dataclass(frozen=True)
class DeployTarget:
    """Where a service runs in each site's cluster."""

    namespace: str
    deployment: str
    container: str
    replicas: int
    host: str


@dataclass(frozen=True)
class HealthCheck:
    """How to tell that a site's copy of a service is healthy."""

    path: str
    expect_status: int = 200
    expect_body: str | None = None
    timeout_seconds: float = 3.0
    retries: int = 5


@dataclass(frozen=True)
class QualityGate:
    """Thresholds the quality scan must meet."""

    min_coverage: float | None = None
    max_findings: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ReleasePolicy:
    """How a release moves traffic between the two sites."""

    weight_steps: tuple[int, ...] = (5, 25, 50)
    step_seconds: float = 60.0
    bake_seconds: float = 300.0
    max_error_rate: float = 0.01
    min_requests: int = 20
    approval_before_second_site: bool = False
    rollout_timeout_minutes: int = 15


@dataclass(frozen=True)
class SonarQube:
    """A SonarQube project that judges the service's quality gate."""

    conn_id: str
    project_key: str


@dataclass(frozen=True)
class Service:
    """One service of the catalog."""

    name: str
    repository: str
    default_branch: str
    owners: tuple[str, ...]
    steps: Mapping[str, Step]
    deploy: DeployTarget
    health: HealthCheck
    quality: QualityGate
    release: ReleasePolicy
    release_branches: tuple[str, ...] = ()
    description: str = ""
    sonarqube: SonarQube | None = None


@dataclass(frozen=True)
class Site:
    """One of the two active-active sites."""

    name: str
    role: str
    kubernetes_conn_id: str
    ingress_conn_id: str

    @property
    def is_primary(self) -> bool:
        return self.role == "primary"


@dataclass(frozen=True)
class Catalog:
    """The whole catalog: sites, the CI cluster, the gateway and the services."""

    path: Path
    timezone: str
    ci_kubernetes_conn_id: str
    ci_namespace: str
    registry: str
    gateway_driver: str
    gateway_conn_id: str
    sites: tuple[Site, ...]
    services: Mapping[str, Service]

    def service(self, name: str) -> Service:
        """Return the service called ``name`` or raise a KeyError that lists the known ones."""
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(sorted(self.services))
            raise KeyError(f"unknown service {name!r}; the catalog has: {known}") from None

    @property
    def service_names(self) -> list[str]:
        return sorted(self.services)

    @property
    def primary(self) -> Site:
        return next(site for site in self.sites if site.role == "primary")

    @property
    def secondary(self) -> Site:
        return next(site for site in self.sites if site.role == "secondary")

    def release_order(self) -> list[Site]:
        """Sites in the order a release visits them: the secondary first."""
        return [self.secondary, self.primary]

    def site(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(f"unknown site {name!r}; the catalog has: {[s.name for s in self.sites]}")

    def __iter__(self) -> Iterator[Service]:
        return iter(self.services[name] for name in self.service_names)


def catalog_path() -> Path:
    """The catalog file in use: ``SRE_CATALOG_PATH`` or the one shipped in include/."""
    return Path(os.environ.get("SRE_CATALOG_PATH") or DEFAULT_CATALOG_PATH)


def load_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """Load and validate the catalog; cached until the file changes."""
    resolved = Path(path) if path is not None else catalog_path()
    try:
        mtime = resolved.stat().st_mtime_ns
    except OSError as err:
        raise CatalogError(
            f"{resolved}: cannot read the service catalog ({err.strerror}); "
            "set SRE_CATALOG_PATH to an existing file or restore include/catalog.yaml"
        ) from None
    env_key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("SRE_")))
    return _load_cached(str(resolved), mtime, env_key)


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: int, env_key: tuple[tuple[str, str], ...]) -> Catalog:
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as err:
        raise CatalogError(f"{source}: cannot read the service catalog ({err.strerror})") from None
    # Parsing and validating cost ~20 ms; every DAG file needs the catalog, so a validated copy
    # is kept on local disk, keyed by the file's content, the schema and the environment.
    key = _cache_key(text, env_key)
    cached = _read_validated_copy(key)
    if cached is not None:
        return _build(cached, source)
    data = _parse(text, source)
    _write_validated_copy(key, data)
    return _build(data, source)


def _cache_dir() -> Path:
    import tempfile

    return Path(
        os.environ.get("SRE_CATALOG_CACHE_DIR") or Path(tempfile.gettempdir()) / "sre-catalog-cache"
    )


def _cache_key(text: str, env_key: tuple[tuple[str, str], ...]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for part in (text, SCHEMA_PATH.read_text(encoding="utf-8"), json.dumps(env_key)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def _read_validated_copy(key: str) -> dict[str, Any] | None:
    try:
        data = json.loads((_cache_dir() / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_validated_copy(key: str, data: dict[str, Any]) -> None:
    directory = _cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".{key}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(data), encoding="utf-8")
        temporary.replace(directory / f"{key}.json")
    except OSError:
        pass  # a read-only disk only costs the next parse its ~20 ms


def _parse(text: str, source: Path) -> dict[str, Any]:
    import yaml

    try:
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe loader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise CatalogError(
            f"{source}:{where}: not valid YAML ({problem}); fix the syntax there"
        ) from None
    if not isinstance(raw, dict):
        raise CatalogError(
            f"{source}: the catalog must be a mapping with sites and services at the top"
        )
    data: dict[str, Any] = _expand_env(raw, source, [])
    _validate(data, source)
    return data


def _expand_env(value: Any, source: Path, where: list[str | int]) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, source, [*where, k]) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, source, [*where, i]) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found:
            return found
        if default is not None:
            return default
        raise CatalogError(
            f"{source}: {_describe(where, {})}: environment variable {name} is not set; "
            f"set it or write ${{{name}:-default}}"
        )

    return _ENV_REF.sub(substitute, value)


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def _validate(data: dict[str, Any], source: Path) -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise CatalogError(
            f"{source}: {_describe(list(first.absolute_path), data)}: {_explain(first)}{more}"
        )
    _check_semantics(data, source)


def _describe(path: list[str | int], data: Mapping[str, Any]) -> str:
    """Turn a JSON path into 'service hello-api, field steps.build.image'."""
    if len(path) >= 2 and path[0] in ("services", "sites") and isinstance(path[1], int):
        items = data.get(str(path[0])) or []
        name = None
        if path[1] < len(items) and isinstance(items[path[1]], dict):
            name = items[path[1]].get("name")
        kind = "service" if path[0] == "services" else "site"
        label = f"{kind} {name!r}" if isinstance(name, str) else f"{kind} #{path[1] + 1}"
        rest = ".".join(str(p) for p in path[2:])
        return f"{label}, field {rest}" if rest else label
    return "field " + (".".join(str(p) for p in path) or "(top level)")


def _explain(error: Any) -> str:
    validator = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    hint = schema.get("description")
    if validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        field_name = missing[0] if missing else "a field"
        return f"missing required field {field_name!r}; add it"
    if validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", error.message)
        allowed = ", ".join(sorted(schema.get("properties", {})))
        return f"unknown field(s) {', '.join(map(repr, extra))}; allowed here: {allowed}"
    if validator == "enum":
        return f"{error.instance!r} is not allowed; use one of {error.validator_value}"
    if validator == "type":
        return f"{error.instance!r} should be of type {error.validator_value}"
    if validator == "pattern":
        return f"{error.instance!r} is not valid; it must be {hint or 'match ' + error.validator_value}"
    if validator in (
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "minItems",
        "maxItems",
        "maxLength",
        "minLength",
    ):
        return f"{error.message}; adjust the value"
    return f"{error.message}" + (f"; expected {hint}" if hint else "")


def _check_semantics(data: dict[str, Any], source: Path) -> None:
    roles = [site["role"] for site in data["sites"]]
    if sorted(roles) != ["primary", "secondary"]:
        raise CatalogError(
            f"{source}: field sites: roles are {roles}; exactly one site must be 'primary' and one 'secondary'"
        )
    site_names = [site["name"] for site in data["sites"]]
    if len(set(site_names)) != len(site_names):
        raise CatalogError(f"{source}: field sites: site names must differ, got {site_names}")
    seen: set[str] = set()
    for index, service in enumerate(data["services"]):
        name = service["name"]
        if name in seen:
            raise CatalogError(
                f"{source}: {_describe(['services', index, 'name'], data)}: duplicate service name {name!r}; "
                "every service needs its own name"
            )
        seen.add(name)
        steps = service.get("release", {}).get("weight_steps", [])
        if steps != sorted(steps) or len(set(steps)) != len(steps):
            raise CatalogError(
                f"{source}: {_describe(['services', index, 'release', 'weight_steps'], data)}: "
                f"{steps} must be strictly increasing, e.g. [5, 25, 50]"
            )
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(data["timezone"])
    except Exception:
        raise CatalogError(
            f"{source}: field timezone: {data['timezone']!r} is not a known IANA time zone; "
            "use a name such as Asia/Shanghai or UTC"
        ) from None


def _step(raw: Mapping[str, Any]) -> Step:
    resources = raw.get("resources") or {}
    return Step(
        image=raw["image"],
        command=tuple(raw["command"]),
        args=tuple(raw.get("args") or ()),
        env=dict(raw.get("env") or {}),
        cpu=resources.get("cpu"),
        memory=resources.get("memory"),
        timeout_minutes=int(raw.get("timeout_minutes", 30)),
    )


def _build(data: dict[str, Any], source: Path) -> Catalog:
    services: dict[str, Service] = {}
    for raw in data["services"]:
        release = raw["release"]
        quality = raw["quality"]
        health = raw["health"]
        sonar = raw.get("sonarqube")
        services[raw["name"]] = Service(
            name=raw["name"],
            description=raw.get("description", ""),
            repository=raw["repository"],
            default_branch=raw["default_branch"],
            release_branches=tuple(raw.get("release_branches") or ()),
            owners=tuple(raw["owners"]),
            steps={name: _step(step) for name, step in raw["steps"].items()},
            deploy=DeployTarget(**raw["deploy"]),
            health=HealthCheck(**health),
            quality=QualityGate(
                min_coverage=quality.get("min_coverage"),
                max_findings=dict(quality.get("max_findings") or {}),
            ),
            release=ReleasePolicy(
                **{**release, "weight_steps": tuple(release.get("weight_steps", (5, 25, 50)))}
            ),
            sonarqube=SonarQube(**sonar) if sonar else None,
        )
    return Catalog(
        path=source,
        timezone=data["timezone"],
        ci_kubernetes_conn_id=data["ci"]["kubernetes_conn_id"],
        ci_namespace=data["ci"]["namespace"],
        registry=data["ci"].get("registry", ""),
        gateway_driver=data["gateway"]["driver"],
        gateway_conn_id=data["gateway"]["conn_id"],
        sites=tuple(Site(**site) for site in data["sites"]),
        services=services,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m include.catalog [PATH]``: validate a catalog, print a summary or the problem."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m include.catalog",
        description="Validate a service catalog and print its sites and services.",
    )
    parser.add_argument(
        "path", nargs="?", help="catalog file (default: $SRE_CATALOG_PATH or include/catalog.yaml)"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        catalog = load_catalog(args.path)
    except CatalogError as err:
        print(f"catalog error: {err}", file=sys.stderr)
        return 2
    sites = ", ".join(f"{site.name} ({site.role})" for site in catalog.sites)
    print(f"{catalog.path}: OK; sites: {sites}; services: {', '.join(catalog.service_names)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
