"""Two stand-in sites, the stand-in gateway, a records store and images of a tiny service, for release tests."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "hello-api"
NAMESPACE = "prod"
REPOSITORY = "registry.local:5000/hello-api"

# A few-line HTTP service; behaviour.json in its image decides how good a version it is.
SERVER = r"""
import json, os, random
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
behaviour = json.load(open("behaviour.json"))
site = os.environ.get("SITE", "")
ready = site not in behaviour.get("never_ready_on", []) and not behaviour.get("never_ready")
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path.startswith("/healthz"):
            status, body = (200, "ok") if ready else (503, "not ready")
        elif random.random() < behaviour.get("error_rate", 0.0):
            status, body = 500, "broken"
        else:
            status, body = 200, "hello from " + behaviour["version"]
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Site", site)
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""

VERSIONS = {
    "v1": {"version": "v1"},
    "v2": {"version": "v2"},
    "never-ready": {"version": "v3", "never_ready": True},
    "errors-30": {"version": "v4", "error_rate": 0.3},
    "bad-on-primary": {"version": "v5", "never_ready_on": ["site-a"]},
    "v6": {"version": "v6"},
}


def build_images(images_dir: Path) -> dict[str, str]:
    """Write one image archive per version; return version -> digest-pinned image reference."""
    images_dir.mkdir(parents=True, exist_ok=True)
    refs = {}
    for name, behaviour in VERSIONS.items():
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for member, text in (("server.py", SERVER), ("behaviour.json", json.dumps(behaviour))):
                data = text.encode()
                info = tarfile.TarInfo(member)
                info.size = len(data)
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
        blob = buffer.getvalue()
        digest = hashlib.sha256(blob).hexdigest()
        (images_dir / f"sha256-{digest}.tar.gz").write_bytes(blob)
        refs[name] = f"{REPOSITORY}@sha256:{digest}"
    return refs


def deployment(site: str, image: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": SERVICE}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 6,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "command": [sys.executable, "server.py"],
                            "env": [{"name": "SITE", "value": site}],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": 8080},
                                "periodSeconds": 1,
                                "failureThreshold": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def service_object() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": {
            "selector": {"app.kubernetes.io/name": SERVICE},
            "ports": [{"port": 80, "targetPort": 8080}],
        },
    }


def test_catalog(path: Path, **release: Any) -> Path:
    """The shipped catalog with hello-api's release made fast."""
    data = yaml.safe_load((ROOT / "include" / "catalog.yaml").read_text())
    for service in data["services"]:
        if service["name"] == SERVICE:
            service["release"].update(
                {
                    "weight_steps": [5, 25, 50],
                    # enough answers at the 5% step (4 a second at 80 requests/s) for a 30% error
                    # rate to be told from noise within the stretched window (4 x step_seconds)
                    "step_seconds": 3,
                    "min_requests": 40,
                    "bake_seconds": 1,
                    "max_error_rate": 0.02,
                    "rollout_timeout_minutes": 1,
                    "approval_before_second_site": False,
                    **release,
                }
            )
            service["health"].update({"timeout_seconds": 2, "retries": 5})
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class World:
    """Everything a release test talks to."""

    tmp: Path
    images: dict[str, str]
    sites: dict[str, Any]
    gateway: Any
    env: dict[str, str]
    stack: ExitStack = field(default_factory=ExitStack)

    def api(self, site: str) -> Any:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(self.sites[site].kubeconfig_path), client_configuration=configuration
        )
        return client.ApiClient(configuration)

    def apps(self, site: str) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api(site))

    def image_at(self, site: str) -> str:
        dep = self.apps(site).read_namespaced_deployment(SERVICE, NAMESPACE)
        return dep.spec.template.spec.containers[0].image

    def settled(self, site: str) -> bool:
        from operators.release.status import DONE, evaluate_rollout

        api = self.api(site)
        dep = api.sanitize_for_serialization(
            client_apps(api).read_namespaced_deployment(SERVICE, NAMESPACE)
        )
        return evaluate_rollout(dep, container="app").state == DONE

    def put_version(self, site: str, image: str, timeout: float = 40.0) -> None:
        """Set a site's Deployment to ``image`` directly and wait until it is settled and answers."""
        body = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
        self.apps(site).patch_namespaced_deployment(SERVICE, NAMESPACE, body)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.image_at(site) == image and self.settled(site) and self.healthy(site):
                return
            time.sleep(0.3)
        raise AssertionError(f"site {site} did not settle on {image}")

    def healthy(self, site: str) -> bool:
        try:
            answer = requests.get(
                f"{self.sites[site].ingress_url}/healthz",
                headers={"Host": f"{SERVICE}.{NAMESPACE}"},
                timeout=2,
            )
        except requests.RequestException:
            return False
        return answer.status_code == 200

    def weights(self) -> dict[str, int]:
        return self.driver().get_weights(SERVICE)

    def driver(self) -> Any:
        from include.catalog import load_catalog
        from operators.gateway import gateway_driver

        return gateway_driver(load_catalog())

    def records(self) -> Any:
        from operators.records.store import RecordsStore

        return RecordsStore.from_conn_id("sre_records")

    def load(self, rate: float = 80.0, seconds: float = 120.0) -> Any:
        from sandbox.gateway.load import LoadGenerator

        return LoadGenerator(
            self.gateway.proxy, f"{SERVICE}.{NAMESPACE}", rate, int(rate * seconds)
        )


def client_apps(api: Any) -> Any:
    from kubernetes import client

    return client.AppsV1Api(api)


def record_green(store: Any, image: str) -> None:
    from operators.records.models import TaskRef, TestCounts

    digest = image.split("@", 1)[1]
    ref = TaskRef(dag_id="ci", run_id=f"ci-{digest[-12:]}", task_id="build")
    store.record_build(
        ref, service=SERVICE, commit="c" * 40, image=image, digest=digest, state="success"
    )
    store.record_test_report(
        TaskRef(dag_id="ci", run_id=ref.run_id, task_id="test"),
        service=SERVICE,
        counts=TestCounts(total=3),
        digest=digest,
    )
    store.record_quality_report(
        TaskRef(dag_id="ci", run_id=ref.run_id, task_id="scan"),
        service=SERVICE,
        gate_passed=True,
        findings={},
        digest=digest,
    )


def start_world(tmp: Path) -> World:
    """Start sites, gateway and records; set the Airflow connections and the test catalog in os.environ."""
    from sandbox.gateway.testing import run_gateway
    from sandbox.kube.testing import run_site

    stack = ExitStack()
    images = build_images(tmp / "images")
    sites = {}
    for name in ("site-a", "site-b"):
        sites[name] = stack.enter_context(
            run_site(
                name,
                images_dir=tmp / "images",
                namespaces=(NAMESPACE,),
                kubeconfig_path=tmp / f"{name}.kubeconfig",
            )
        )
    gateway = stack.enter_context(run_gateway())
    env = {
        "SRE_CATALOG_PATH": str(test_catalog(tmp / "catalog.yaml")),
        "SRE_FREEZE_WINDOWS_PATH": str(tmp / "freeze.yaml"),
        "AIRFLOW_CONN_SRE_RECORDS": json.dumps(
            {"conn_type": "sqlite", "host": str(tmp / "records.db")}
        ),
        **gateway.connection_env("gateway_admin"),
    }
    (tmp / "freeze.yaml").write_text("windows: []\n")
    for name, site in sites.items():
        key = name.replace("-", "_").upper()
        env[f"AIRFLOW_CONN_KUBERNETES_{key}"] = json.dumps(
            {"conn_type": "kubernetes", "extra": {"kube_config_path": str(site.kubeconfig_path)}}
        )
        host, port = site.ingress_url.split("://", 1)[1].rsplit(":", 1)
        env[f"AIRFLOW_CONN_INGRESS_{key}"] = json.dumps(
            {"conn_type": "http", "host": host, "port": int(port)}
        )
    os.environ.update(env)
    world = World(tmp=tmp, images=images, sites=sites, gateway=gateway, env=env, stack=stack)
    from operators.records.migrate import migrate

    store = world.records()
    migrate(store)
    for image in images.values():
        record_green(store, image)
    for name in sites:
        api = world.api(name)
        from kubernetes import client

        client.CoreV1Api(api).create_namespaced_service(NAMESPACE, service_object())
        client_apps(api).create_namespaced_deployment(NAMESPACE, deployment(name, images["v1"]))
    from include.catalog import load_catalog

    catalog = load_catalog()
    world.driver().ensure_service(catalog.service(SERVICE))
    world.driver().set_weights(SERVICE, {"site-a": 50, "site-b": 50})
    for name in sites:
        world.put_version(name, images["v1"])
    return world
