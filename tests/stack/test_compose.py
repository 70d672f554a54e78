"""docker-compose.yaml, checked without a Docker engine: schema, pins, health, secrets, wiring."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.stack.compose import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    ROOT,
    InterpolationError,
    compose_schema,
    load_compose,
    raw_compose,
    read_env_file,
    referenced_variables,
    required_variables,
    service_env_files,
    service_environment,
)

AIRFLOW_SERVICES = [
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
]
SANDBOX_SERVICES = ["kube-site-a", "kube-site-b", "kube-ci", "gateway", "es-standin"]
ONE_SHOT = {"airflow-init", "kibana-setup"}
CATALOG_CONNECTIONS = [
    "kubernetes_site_a",
    "kubernetes_site_b",
    "kubernetes_ci",
    "ingress_site_a",
    "ingress_site_b",
    "gateway_admin",
    "sre_records",
]
_TAG = re.compile(r"^(?P<name>[^@]+?):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return load_compose()


def test_compose_file_matches_the_compose_specification(model: dict[str, Any]) -> None:
    validator_class = jsonschema.validators.validator_for(compose_schema())
    validator_class.check_schema(compose_schema())
    errors = sorted(
        validator_class(compose_schema()).iter_errors(model), key=lambda e: list(e.absolute_path)
    )
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_schema_check_catches_a_broken_file(model: dict[str, Any]) -> None:
    broken = {
        **model,
        "services": {
            **model["services"],
            "redis": {**model["services"]["redis"], "healthcheck": {"test": 5}},
        },
    }
    validator = jsonschema.validators.validator_for(compose_schema())(compose_schema())
    assert list(validator.iter_errors(broken))
    unknown = {
        **model,
        "services": {
            **model["services"],
            "redis": {**model["services"]["redis"], "helthcheck": {}},
        },
    }
    assert list(validator.iter_errors(unknown))


def test_every_image_is_pinned_to_an_explicit_version(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        image = service.get("image")
        assert image, f"{name} has no image name"
        match = _TAG.match(image)
        assert match, f"{name}: image {image!r} has no explicit tag"
        assert match.group("tag") != "latest", f"{name}: image {image!r} uses latest"
    services = model["services"]
    assert (
        services["elasticsearch"]["image"].rsplit(":", 1)[1]
        == services["kibana"]["image"].rsplit(":", 1)[1]
    )


def test_elasticsearch_server_matches_the_installed_client(model: dict[str, Any]) -> None:
    from importlib.metadata import version

    server = model["services"]["elasticsearch"]["image"].rsplit(":", 1)[1]
    client = version("elasticsearch")
    assert server.split(".")[:2] == client.split(".")[:2], (server, client)
    settings = read_env_file(ROOT / "include" / "logging" / "task-logs.env")
    assert settings["AIRFLOW__ELASTICSEARCH__ES_COMPAT_WITH"] == server.split(".")[0]


def test_every_service_is_health_checked_and_waited_on(model: dict[str, Any]) -> None:
    services = model["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", f"{name} is a one-shot job"
        else:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert isinstance(spec, dict) and "condition" in spec, (
                f"{name} -> {dependency} has no condition"
            )
            wanted = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert spec["condition"] == wanted, f"{name} -> {dependency}: {spec['condition']}"
            assert dependency in services
    for name in [*AIRFLOW_SERVICES[1:], "kibana-setup"]:
        assert (
            services[name]["depends_on"]["airflow-init"]["condition"]
            == "service_completed_successfully"
        )
    for name in AIRFLOW_SERVICES:
        for needed in ("mysql", "redis", "elasticsearch"):
            assert services[name]["depends_on"][needed]["condition"] == "service_healthy", (
                name,
                needed,
            )


def test_data_lives_in_named_volumes(model: dict[str, Any]) -> None:
    declared = set(model.get("volumes") or {})
    stores = {
        "mysql": "/var/lib/mysql",
        "redis": "/data",
        "elasticsearch": "/usr/share/elasticsearch/data",
        "kibana": "/usr/share/kibana/data",
    }
    for name, target in stores.items():
        mounts = [v.split(":") for v in model["services"][name].get("volumes", [])]
        assert any(m[1] == target and m[0] in declared for m in mounts), (
            f"{name} keeps {target} outside a named volume"
        )
    for name, service in model["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in declared or source.startswith(("./", "/")), (
                f"{name}: undeclared volume {source}"
            )


def test_secrets_come_from_the_env_file_only() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    example = read_env_file(ENV_EXAMPLE)
    missing = sorted(required_variables(text) - set(example))
    assert not missing, f".env.example lacks {missing}"
    assert sorted(referenced_variables(text) - set(example)) == []
    secret_words = ("PASSWORD", "SECRET", "FERNET", "JWT", "TOKEN")
    for name, service in raw_compose()["services"].items():
        for key, value in service_environment(service).items():
            if any(word in key for word in secret_words):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", value), (
                    f"{name}: {key} must be a required .env variable"
                )
    with pytest.raises(InterpolationError, match="AIRFLOW_JWT_SECRET"):
        load_compose({k: v for k, v in example.items() if k != "AIRFLOW_JWT_SECRET"})


def test_the_real_env_file_is_never_committed() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, ".env must be git-ignored"
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", ".env"], cwd=ROOT, capture_output=True, check=False
    )
    assert tracked.returncode != 0, ".env is tracked"
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".env", ".git", ".venv", "kubeconfig"} <= set(dockerignore)


def test_all_airflow_components_share_one_jwt_secret_and_the_execution_api(
    model: dict[str, Any],
) -> None:
    services = model["services"]
    envs = {
        name: service_environment(services[name]) for name in [*AIRFLOW_SERVICES, "kibana-setup"]
    }
    assert len({env["AIRFLOW__API_AUTH__JWT_SECRET"] for env in envs.values()}) == 1
    assert len({env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] for env in envs.values()}) == 1
    for env in envs.values():
        assert (
            env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
            == "http://airflow-apiserver:8080/execution/"
        )
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "8080" in services["airflow-apiserver"]["ports"][0]
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert services["airflow-worker"]["command"] == "celery worker"


def test_airflow_services_read_the_shared_logging_settings(model: dict[str, Any]) -> None:
    shared = ROOT / "include" / "logging" / "task-logs.env"
    for name in [*AIRFLOW_SERVICES, "kibana-setup"]:
        service = model["services"][name]
        assert service_env_files(service) == [shared], name
        overridden = set(service_environment(service)) & set(read_env_file(shared))
        assert not overridden, f"{name} overrides shared logging settings: {sorted(overridden)}"


def test_mysql_holds_both_databases_in_utf8mb4(model: dict[str, Any]) -> None:
    mysql = model["services"]["mysql"]
    assert mysql["image"].startswith("mysql:8.")
    assert "--character-set-server=utf8mb4" in mysql["command"]
    assert mysql["environment"]["MYSQL_DATABASE"] == "airflow"
    init = model["configs"]["mysql-records-db"]["content"]
    assert re.search(r"CREATE DATABASE IF NOT EXISTS sre_records CHARACTER SET utf8mb4", init)
    user = read_env_file(ENV_EXAMPLE)["MYSQL_USER"]
    assert f"GRANT ALL PRIVILEGES ON sre_records.* TO '{user}'@'%'" in init
    env = service_environment(model["services"]["airflow-worker"])
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith(
        "@mysql:3306/airflow?charset=utf8mb4"
    )
    assert env["AIRFLOW_CONN_SRE_RECORDS"].endswith("@mysql:3306/sre_records?charset=utf8mb4")


def test_every_catalog_connection_is_wired(model: dict[str, Any]) -> None:
    from include.catalog import load_catalog

    catalog = load_catalog()
    named = {catalog.ci_kubernetes_conn_id, catalog.gateway_conn_id}
    for site in catalog.sites:
        named |= {site.kubernetes_conn_id, site.ingress_conn_id}
    assert named | {"sre_records"} == set(CATALOG_CONNECTIONS)
    env = service_environment(model["services"]["airflow-worker"])
    for conn_id in CATALOG_CONNECTIONS:
        assert env[f"AIRFLOW_CONN_{conn_id.upper()}"], conn_id
    init_script = model["services"]["airflow-init"]["command"][1]
    assert "airflow db migrate" in init_script
    assert "airflow users create" in init_script
    assert "python -m operators.records migrate" in init_script
    assert "python -m operators.logsearch.setup" in init_script
    for conn_id in CATALOG_CONNECTIONS:
        assert conn_id in init_script


def test_sandbox_connections_are_valid_airflow_connections() -> None:
    from airflow.models.connection import Connection

    example = read_env_file(ENV_EXAMPLE)
    for conn_id in CATALOG_CONNECTIONS:
        raw = example.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        if raw is None:
            continue
        conn = Connection.from_json(raw, conn_id=conn_id)
        assert conn.conn_type in ("kubernetes", "http"), conn_id
        if conn.conn_type == "kubernetes":
            kube = conn.extra_dejson["kube_config"]
            assert kube["current-context"] in {c["name"] for c in kube["contexts"]}


def test_stand_ins_are_an_optional_profile(model: dict[str, Any]) -> None:
    services = model["services"]
    for name, service in services.items():
        sandboxed = name in SANDBOX_SERVICES
        assert (service.get("profiles") == ["sandbox"]) == sandboxed, name
        assert ("sandbox" in service["image"]) == sandboxed, name
        if sandboxed:
            assert service["build"]["target"] == "sandbox"
    assert services["es-standin"]["command"][:3] == ["python", "-m", "sandbox.es"]
    assert services["gateway"]["command"][:3] == ["python", "-m", "sandbox.gateway"]
    assert {services[n]["command"][2] for n in ("kube-site-a", "kube-site-b", "kube-ci")} == {
        "sandbox.kube"
    }


def test_docs_explain_adding_real_clusters() -> None:
    docs = (ROOT / "docs" / "stack.md").read_text(encoding="utf-8")
    section = docs.split("## Adding real clusters", 1)[1].split("\n## ", 1)[0]
    for variable in (
        "AIRFLOW_CONN_KUBERNETES_SITE_A",
        "AIRFLOW_CONN_KUBERNETES_SITE_B",
        "AIRFLOW_CONN_KUBERNETES_CI",
    ):
        assert variable in section
    assert "/opt/airflow/kubeconfig" in section
    mounts = [
        v
        for v in load_compose()["services"]["airflow-worker"]["volumes"]
        if "/opt/airflow/kubeconfig" in v
    ]
    assert mounts and mounts[0].endswith(":ro")


def test_compose_yaml_is_plain_yaml() -> None:
    data = yaml.safe_load(Path(COMPOSE_FILE).read_text(encoding="utf-8"))
    assert "version" not in data
    assert {"services", "volumes", "configs"} <= set(data)
