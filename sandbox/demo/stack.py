"""The local two-site stand-in the demo, `make ui` and the end-to-end tests run on.

``LocalStack`` starts, on free loopback ports: one Kubernetes API stand-in per site plus one for
the CI cluster, and the stand-in gateway. It creates the sample service's git repository, builds
the image both sites start on, deploys it to both sites, registers the service at the gateway with
an even split, and returns the environment (Airflow connections and catalog variables) that
points Airflow at all of it. Everything it starts is stopped by ``close()``, also on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MANIFEST = ROOT / "include" / "sample_service" / "deploy" / "deployment.yaml"
SITE_NAMES = ("site-a", "site-b")
SITE_CONN = {"site-a": "site_a", "site-b": "site_b"}
GATEWAY_ADMIN_KEY = "demo-admin-key"
REGISTRY = "registry.local:5000"
SERVICE = "hello-api"


class StackError(RuntimeError):
    """A stand-in did not start or the sites could not be prepared."""


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    info: dict[str, Any]
    log_path: Path


@dataclass
class LocalStack:
    """Stand-ins for two sites, the CI cluster and the gateway, on loopback."""

    workdir: Path
    # Divides the sites' probe periods, back-offs and progress deadlines (tests run faster).
    speed: float = 1.0
    processes: list[Process] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    repository: dict[str, Any] = field(default_factory=dict)
    base_image: str = ""

    @property
    def images_dir(self) -> Path:
        return self.workdir / "images"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    def info(self, name: str) -> dict[str, Any]:
        for process in self.processes:
            if process.name == name:
                return process.info
        raise KeyError(name)

    # -- start -------------------------------------------------------------------------------

    def start(self, *, progress: Any = print) -> LocalStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.images_dir.mkdir(exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        (self.workdir / "kube").mkdir(exist_ok=True)
        progress("creating the sample service's git repository")
        from sandbox.sample_repo import create_repository

        summary = create_repository(self.workdir / "git")
        self.repository = summary if isinstance(summary, dict) else _as_dict(summary)
        progress("starting the Kubernetes stand-ins (site-a, site-b, ci) and the gateway")
        for site in (*SITE_NAMES, "ci"):
            kubeconfig = self.workdir / "kube" / f"{site}.kubeconfig"
            self._spawn(
                site,
                [
                    sys.executable,
                    "-m",
                    "sandbox.kube",
                    "--site",
                    site,
                    "--port",
                    "0",
                    "--ingress-port",
                    "0",
                    "--kubeconfig",
                    str(kubeconfig),
                    "--images-dir",
                    str(self.images_dir),
                    "--state-dir",
                    str(self.workdir / "kube" / site),
                    "--speed",
                    str(self.speed),
                ],
            )
        self._spawn(
            "gateway",
            [
                sys.executable,
                "-m",
                "sandbox.gateway",
                "--admin-port",
                "0",
                "--proxy-port",
                "0",
                "--admin-key",
                GATEWAY_ADMIN_KEY,
            ],
        )
        self.env = self._airflow_env()
        os.environ.update(self.env)
        subprocess.run(
            [sys.executable, "-m", "operators.records", "migrate", "--quiet"], check=True, cwd=ROOT
        )
        self.create_namespace("ci", "ci")
        progress("building the image both sites start on (tag demo/base)")
        self.base_image = self.build_image(self.repository_tag("demo/base"))
        progress(f"deploying {SERVICE} {self.base_image.split('@')[1][:19]}… to both sites")
        for site in SITE_NAMES:
            self.deploy_sample(site, self.base_image)
        for site in SITE_NAMES:
            self.wait_available(site, timeout=120)
        self.register_at_gateway()
        return self

    def _spawn(self, name: str, command: list[str], timeout: float = 30.0) -> Process:
        log_path = self.logs_dir / f"{name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        env = dict(os.environ)
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
        # Pods run on this host with its PATH: the project's venv (python, pytest, ruff,
        # bandit, coverage) comes first, as the step images would provide them.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        popen = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log_file,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        assert popen.stdout is not None
        line = _read_line(popen.stdout, timeout)
        if not line:
            popen.kill()
            raise StackError(f"{name} did not start within {timeout:.0f}s; see {log_path}")
        try:
            info = json.loads(line)
        except json.JSONDecodeError:
            popen.kill()
            raise StackError(
                f"{name} printed {line[:200]!r} instead of its address; see {log_path}"
            ) from None
        # Keep draining stdout into the log so the child never blocks on a full pipe.
        threading.Thread(target=_drain, args=(popen.stdout, log_file), daemon=True).start()
        process = Process(name, popen, info, log_path)
        self.processes.append(process)
        return process

    def _airflow_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for site in (*SITE_NAMES, "ci"):
            info = self.info(site)
            conn_suffix = SITE_CONN.get(site, "ci").upper()
            namespace = "ci" if site == "ci" else "prod"
            env[f"AIRFLOW_CONN_KUBERNETES_{conn_suffix}"] = json.dumps(
                {
                    "conn_type": "kubernetes",
                    "extra": {"kube_config_path": info["kubeconfig"], "namespace": namespace},
                }
            )
            if site != "ci":
                ingress = info["ingress"]
                host, port = ingress.split("://", 1)[1].rsplit(":", 1)
                env[f"AIRFLOW_CONN_INGRESS_{conn_suffix}"] = json.dumps(
                    {"conn_type": "http", "host": host, "port": int(port), "schema": "http"}
                )
        gateway = self.info("gateway")
        admin_host, admin_port = gateway["admin"].split("://", 1)[1].rsplit(":", 1)
        env["AIRFLOW_CONN_GATEWAY_ADMIN"] = json.dumps(
            {
                "conn_type": "http",
                "host": admin_host,
                "port": int(admin_port),
                "schema": "http",
                "password": GATEWAY_ADMIN_KEY,
                "extra": {"metrics_url": gateway["metrics"]},
            }
        )
        env["SRE_GIT_BASE"] = f"file://{self.workdir / 'git'}"
        env["SRE_IMAGE_STORE"] = str(self.images_dir)
        env["SRE_REGISTRY"] = REGISTRY
        # Each run keeps its own platform records, so a run that was interrupted mid-release
        # (and still holds the release lock) never blocks the next one.
        env["AIRFLOW_CONN_SRE_RECORDS"] = f"sqlite://{self.workdir / 'records.db'}"
        # The demo runs whenever it is started: its freeze calendar is empty (the shipped
        # include/freeze_windows.yaml has a weekend freeze that would stop a Friday-night demo).
        freeze = self.workdir / "freeze_windows.yaml"
        freeze.write_text("timezone: Asia/Shanghai\nwindows: []\n", encoding="utf-8")
        env["SRE_FREEZE_WINDOWS_PATH"] = str(freeze)
        return env

    def repository_tag(self, tag: str) -> str:
        tags = self.repository.get("tags") or {}
        if tag not in tags:
            raise StackError(f"the sample repository has no tag {tag!r}: {sorted(tags)}")
        return str(tags[tag])

    # -- images and deployments --------------------------------------------------------------

    def build_image(self, commit: str) -> str:
        """Build the sample service at ``commit`` the way its CI build step does."""
        url = f"{self.env['SRE_GIT_BASE']}/{SERVICE}.git"
        with tempfile.TemporaryDirectory(prefix="demo-build-") as tmp:
            src = Path(tmp) / "src"
            subprocess.run(
                ["git", "clone", "--quiet", "--no-checkout", "--", url, str(src)], check=True
            )
            subprocess.run(
                ["git", "-C", str(src), "checkout", "--quiet", "--detach", commit], check=True
            )
            env = dict(os.environ)
            env.update(IMAGE_STORE=str(self.images_dir), IMAGE_REPOSITORY=f"{REGISTRY}/{SERVICE}")
            completed = subprocess.run(
                ["sh", "ci/build.sh"], cwd=src, env=env, capture_output=True, text=True, check=False
            )
        if completed.returncode != 0:
            raise StackError(f"building {commit[:12]} failed:\n{completed.stderr[-2000:]}")
        for line in completed.stdout.splitlines():
            if line.startswith("::sre-result:: "):
                result = json.loads(line.split(" ", 1)[1])
                if result.get("kind") == "image":
                    return str(result["image"])
        raise StackError(f"building {commit[:12]} printed no image result line")

    def api_client(self, site: str) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=self.info(site)["kubeconfig"])

    def create_namespace(self, cluster: str, name: str) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            client.CoreV1Api(self.api_client(cluster)).create_namespace(
                {"metadata": {"name": name}}
            )
        except ApiException as err:
            if err.status != 409:
                raise

    def deploy_sample(self, site: str, image: str) -> None:
        import yaml
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        api = self.api_client(site)
        core = client.CoreV1Api(api)
        apps = client.AppsV1Api(api)
        self.create_namespace(site, "prod")
        for doc in yaml.safe_load_all(SAMPLE_MANIFEST.read_text(encoding="utf-8")):
            if not doc:
                continue
            if doc["kind"] == "Deployment":
                container = doc["spec"]["template"]["spec"]["containers"][0]
                container["image"] = image
                container.setdefault("env", []).append({"name": "SITE_NAME", "value": site})
                try:
                    apps.create_namespaced_deployment("prod", doc)
                except ApiException as err:
                    if err.status != 409:
                        raise
                    apps.replace_namespaced_deployment(doc["metadata"]["name"], "prod", doc)
            elif doc["kind"] == "Service":
                try:
                    core.create_namespaced_service("prod", doc)
                except ApiException as err:
                    if err.status != 409:
                        raise

    def deployment_image(self, site: str) -> str:
        from kubernetes import client

        deployment = client.AppsV1Api(self.api_client(site)).read_namespaced_deployment(
            SERVICE, "prod"
        )
        return str(deployment.spec.template.spec.containers[0].image)

    def wait_available(self, site: str, timeout: float) -> None:
        from kubernetes import client

        apps = client.AppsV1Api(self.api_client(site))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = apps.read_namespaced_deployment(SERVICE, "prod").status
            if (
                status.available_replicas
                and status.available_replicas >= 1
                and not status.unavailable_replicas
            ):
                return
            time.sleep(0.5)
        raise StackError(f"{SERVICE} did not become available on {site} within {timeout:.0f}s")

    def register_at_gateway(self) -> None:
        from include.catalog import load_catalog
        from operators.gateway import gateway_driver

        catalog = load_catalog()
        driver = gateway_driver(catalog)
        driver.ensure_service(catalog.service(SERVICE), {site: 50 for site in SITE_NAMES})
        driver.set_weights(SERVICE, {site: 50 for site in SITE_NAMES})

    @property
    def proxy_url(self) -> str:
        return str(self.info("gateway")["proxy"])

    # -- stop --------------------------------------------------------------------------------

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.popen.poll() is None:
                try:
                    os.killpg(process.popen.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 10
        for process in self.processes:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                process.popen.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.popen.wait(timeout=5)
        self.processes.clear()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_dict(summary: Any) -> dict[str, Any]:
    if hasattr(summary, "as_dict"):
        return dict(summary.as_dict())
    from dataclasses import asdict

    return asdict(summary)


def _read_line(stream: Any, timeout: float) -> str:
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].decode("utf-8", "replace").strip() if result else ""


def _drain(stream: Any, sink: Any) -> None:
    for chunk in iter(lambda: stream.read(4096), b""):
        sink.write(chunk)
        sink.flush()


def fresh_workdir(path: Path) -> Path:
    """Empty ``path`` of a previous run's state (repository, images, stand-in state)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
