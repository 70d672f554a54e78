"""One site: its object store, kubelet, controllers, API server, ingress and faults."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.kube.controllers import Controllers
from sandbox.kube.faults import Faults
from sandbox.kube.kubelet import Kubelet
from sandbox.kube.meta import (
    ApiError,
    already_exists,
    conflict,
    new_uid,
    not_found,
    now_rfc3339,
    random_suffix,
)
from sandbox.kube.objects import check_namespace_matches, default, qos_class, validate
from sandbox.kube.resources import (
    DEPLOYMENT,
    EVENT,
    JOB,
    NAMESPACE,
    NODE,
    POD,
    REPLICASET,
    SERVICE,
    SERVICEACCOUNT,
    Resource,
)
from sandbox.kube.store import Store

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
GENERATION_RESOURCES = {DEPLOYMENT.key, REPLICASET.key, JOB.key}
ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})


def advertised_host(listen_host: str) -> str:
    """The host to put in URLs for a listen address: itself, or 127.0.0.1 for an any-address."""
    return "127.0.0.1" if listen_host in ANY_ADDRESS else listen_host


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


@dataclass
class SiteOptions:
    """Knobs of one site; every duration in pod and rollout semantics is divided by `speed`."""

    name: str = "site-a"
    host: str = "127.0.0.1"
    advertise_host: str | None = None
    port: int = 0
    ingress_port: int = 0
    kubeconfig_path: Path | None = None
    images_dir: Path | None = None
    state_dir: Path | None = None
    token: str | None = None
    speed: float = 1.0
    namespaces: tuple[str, ...] = ()
    auto_create_namespaces: bool = False
    history_size: int = 5000
    max_grace_seconds: float = 3.0
    memory_poll_seconds: float = 0.1
    log_max_bytes: int = 32 * 1024 * 1024
    keep_pod_dirs: bool = False
    bookmark_interval: float = 30.0
    tls: bool = False
    event_ttl_seconds: float = 3600.0
    extra: dict[str, Any] = field(default_factory=dict)


class Site:
    """Everything one stand-in cluster holds, running on one event loop."""

    def __init__(self, options: SiteOptions) -> None:
        self.options = options
        self.name = options.name
        self.node_name = f"{options.name}-node"
        self.token = options.token or secrets.token_urlsafe(24)
        self.speed = max(float(options.speed), 1e-6)
        self.max_grace_seconds = options.max_grace_seconds
        self.memory_poll_seconds = options.memory_poll_seconds
        self.log_max_bytes = options.log_max_bytes
        self.keep_pod_dirs = options.keep_pod_dirs
        self.bookmark_interval = options.bookmark_interval
        self._own_state_dir = options.state_dir is None
        self.state_dir = Path(options.state_dir or tempfile.mkdtemp(prefix=f"kube-{options.name}-"))
        self.images_dir = Path(options.images_dir or self.state_dir / "images")
        self.store = Store(options.history_size)
        self.ready_since: dict[str, float] = {}
        self.orphan_uids: dict[str, bool] = {}
        self._event_index: dict[tuple[str, ...], str] = {}
        self._service_ips = 10
        self.faults = Faults()
        self.kubelet = Kubelet(self)
        self.controllers = Controllers(self)
        self.api_port = 0
        self.ingress_port = 0
        self.https_port = 0
        self.ca_pem = b""
        self._runners: list[Any] = []
        self.started_at = time.time()

    @property
    def advertise_host(self) -> str:
        """The host name clients are given: the option, else the listen host (127.0.0.1 for any)."""
        return self.options.advertise_host or advertised_host(self.options.host)

    @property
    def api_url(self) -> str:
        return _url("http", self.advertise_host, self.api_port)

    @property
    def ingress_url(self) -> str:
        return _url("http", self.advertise_host, self.ingress_port)

    # ---- start and stop ------------------------------------------------------------------------
    async def start(self) -> None:
        from aiohttp import web

        from sandbox.kube.api import build_api_app
        from sandbox.kube.ingress import build_ingress_app

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.controllers.start()
        for namespace in (*SYSTEM_NAMESPACES, *self.options.namespaces):
            self.ensure_namespace(namespace)
        self._create_node()
        for app, port in (
            (build_api_app(self), self.options.port),
            (build_ingress_app(self), self.options.ingress_port),
        ):
            runner = web.AppRunner(
                app,
                access_log=None,
                handle_signals=False,
                shutdown_timeout=0.5,
                handler_cancellation=True,
            )
            await runner.setup()
            tcp = web.TCPSite(runner, self.options.host, port, reuse_address=True)
            await tcp.start()
            self._runners.append(runner)
        self.api_port = self._bound_port(self._runners[0])
        self.ingress_port = self._bound_port(self._runners[1])
        if self.options.tls:
            await self._start_https(build_api_app(self))
        if self.options.kubeconfig_path is not None:
            self.write_kubeconfig(Path(self.options.kubeconfig_path))
            if self.options.tls:
                self.write_kubeconfig(
                    self.https_kubeconfig_path(Path(self.options.kubeconfig_path)), https=True
                )

    async def _start_https(self, app: Any) -> None:
        from aiohttp import web

        from sandbox.kube.tls import make_certificate, server_context

        names = {self.advertise_host, advertised_host(self.options.host)}
        cert, key = await asyncio.to_thread(
            make_certificate, self.state_dir / "tls", self.name, sorted(names)
        )
        self.ca_pem = cert.read_bytes()
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=0.5,
            handler_cancellation=True,
        )
        await runner.setup()
        await web.TCPSite(
            runner, self.options.host, 0, ssl_context=server_context(cert, key)
        ).start()
        self._runners.append(runner)
        self.https_port = self._bound_port(runner)

    @staticmethod
    def https_kubeconfig_path(path: Path) -> Path:
        """Where the HTTPS kubeconfig goes, next to the plain one."""
        return path.with_name(path.name + "-https")

    @staticmethod
    def _bound_port(runner: Any) -> int:
        for address in runner.addresses:
            return int(address[1])
        raise RuntimeError("server did not bind")

    async def stop(self) -> None:
        await self.faults.drop_all()
        await self.kubelet.shutdown()
        await self.controllers.stop()
        for runner in self._runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        self._runners.clear()
        if self._own_state_dir:
            await asyncio.to_thread(shutil.rmtree, self.state_dir, True)

    def kubeconfig(self, https: bool = False) -> str:
        user = f"{self.name}-admin"
        server = _url("https", self.advertise_host, self.https_port) if https else self.api_url
        authority = []
        if https:
            authority = [
                f"    certificate-authority-data: {base64.b64encode(self.ca_pem).decode()}"
            ]
        return "\n".join(
            [
                "apiVersion: v1",
                "kind: Config",
                "clusters:",
                f"- name: {json.dumps(self.name)}",
                "  cluster:",
                f"    server: {json.dumps(server)}",
                *authority,
                "contexts:",
                f"- name: {json.dumps(self.name)}",
                "  context:",
                f"    cluster: {json.dumps(self.name)}",
                f"    user: {json.dumps(user)}",
                "    namespace: default",
                f"current-context: {json.dumps(self.name)}",
                "preferences: {}",
                "users:",
                f"- name: {json.dumps(user)}",
                "  user:",
                f"    token: {json.dumps(self.token)}",
                "",
            ]
        )

    def write_kubeconfig(self, path: Path, https: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.kubeconfig(https=https))

    # ---- objects -------------------------------------------------------------------------------
    def ensure_namespace(self, name: str) -> dict[str, Any]:
        existing = self.store.get(NAMESPACE, "", name)
        if existing is not None:
            return existing
        return self.create_object(NAMESPACE, {"metadata": {"name": name}})

    def _create_node(self) -> None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
        cpus = os.cpu_count() or 1
        node = {
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "node-role.kubernetes.io/control-plane": "",
                },
            },
            "spec": {},
            "status": {
                "capacity": {"cpu": str(cpus), "memory": f"{memory}Ki", "pods": "110"},
                "allocatable": {"cpu": str(cpus), "memory": f"{memory}Ki", "pods": "110"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": now_rfc3339(),
                        "lastTransitionTime": now_rfc3339(),
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.node_name},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.32.4",
                    "kubeProxyVersion": "v1.32.4",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "containerRuntimeVersion": "sandbox://1.0",
                    "osImage": "local processes",
                    "kernelVersion": os.uname().release,
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                },
            },
        }
        node["apiVersion"], node["kind"] = "v1", "Node"
        self.store.create(NODE, node)

    def _check_namespace(self, namespace: str, resource: Resource, name: str) -> None:
        ns = self.store.get(NAMESPACE, "", namespace)
        if ns is None:
            if self.options.auto_create_namespaces:
                self.ensure_namespace(namespace)
                return
            raise not_found("", "namespaces", namespace)
        if ns.get("status", {}).get("phase") == "Terminating":
            raise ApiError(
                403,
                "Forbidden",
                f'{resource.plural} "{name}" is forbidden: unable to create new content in namespace {namespace} because it is being terminated',
                {
                    "name": name,
                    "kind": resource.plural,
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {namespace} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def create_object(
        self,
        resource: Resource,
        body: dict[str, Any],
        namespace: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Create as the API server does: default, validate, stamp, store."""
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if resource.namespaced:
            check_namespace_matches(obj, namespace or meta.get("namespace") or "default")
            namespace = meta["namespace"]
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            for _ in range(20):
                candidate = f"{meta['generateName']}{random_suffix()}"
                if self.store.get(resource, namespace or "", candidate) is None:
                    break
            meta["name"] = candidate
        for key in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "selfLink",
        ):
            meta.pop(key, None)
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        default(resource, obj)
        validate(resource, obj)
        if resource.namespaced:
            self._check_namespace(namespace or "default", resource, str(meta.get("name")))
        meta["uid"] = new_uid()
        if resource.key in GENERATION_RESOURCES:
            meta["generation"] = 1
        self._initial_status(resource, obj)
        if dry_run:
            meta["creationTimestamp"] = now_rfc3339()
            if self.store.get(resource, namespace or "", meta["name"]) is not None:
                raise already_exists(resource.group, resource.plural, meta["name"])
            return obj
        created = self.store.create(resource, obj)
        if resource.key == NAMESPACE.key:
            self.store.create(
                SERVICEACCOUNT,
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": meta["name"]},
                },
            )
        return created

    def _initial_status(self, resource: Resource, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if resource.key == POD.key:
            obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj["spec"])}
        elif resource.key in (DEPLOYMENT.key, REPLICASET.key):
            obj["status"] = {} if resource.key == DEPLOYMENT.key else {"replicas": 0}
        elif resource.key == JOB.key:
            obj["status"] = {}
            uid = meta["uid"]
            spec = obj["spec"]
            template_labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
            if not spec.get("manualSelector"):
                for key, value in {
                    "batch.kubernetes.io/controller-uid": uid,
                    "batch.kubernetes.io/job-name": meta["name"],
                    "controller-uid": uid,
                    "job-name": meta["name"],
                }.items():
                    template_labels.setdefault(key, value)
                spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        elif resource.key == SERVICE.key:
            obj["status"] = {"loadBalancer": {}}
            spec = obj["spec"]
            if spec.get("clusterIP") != "None" and spec.get("type") != "ExternalName":
                if not spec.get("clusterIP"):
                    self._service_ips += 1
                    spec["clusterIP"] = (
                        f"10.96.{self._service_ips // 250}.{self._service_ips % 250 + 1}"
                    )
                spec["clusterIPs"] = [spec["clusterIP"]]
        elif resource.key == NAMESPACE.key:
            obj["status"] = {"phase": "Active"}

    def update_object(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        body: dict[str, Any],
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Replace as the API server does, honouring resourceVersion preconditions."""
        old = self.store.get(resource, namespace if resource.namespaced else "", name)
        if old is None:
            raise not_found(resource.group, resource.plural, name)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown format")
        new = copy.deepcopy(body)
        meta = new.setdefault("metadata", {})
        if meta.get("name") not in (None, name):
            raise ApiError(
                400,
                "BadRequest",
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})",
            )
        if resource.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )
        rv = meta.get("resourceVersion")
        if rv and str(rv) != old["metadata"]["resourceVersion"]:
            raise conflict(resource.group, resource.plural, name)
        if subresource == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            new = merged
        else:
            for key in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if key in old["metadata"]:
                    meta[key] = old["metadata"][key]
                else:
                    meta.pop(key, None)
            meta["name"] = name
            if resource.namespaced:
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            if resource.has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            new["apiVersion"], new["kind"] = resource.api_version, resource.kind
            default(resource, new)
            if resource.key == JOB.key:
                self._keep_job_selector(old, new)
            if resource.key == POD.key and old["spec"].get("nodeName"):
                new.setdefault("spec", {}).setdefault("nodeName", old["spec"]["nodeName"])
            if resource.key == SERVICE.key:
                for key in ("clusterIP", "clusterIPs"):
                    if key in old.get("spec", {}):
                        new.setdefault("spec", {})[key] = old["spec"][key]
            validate(resource, new, old)
            if resource.key in GENERATION_RESOURCES and new.get("spec") != old.get("spec"):
                meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        meta = new["metadata"]
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old or dry_run:
            return old if new == old else new
        return self.store.update(resource, new)

    @staticmethod
    def _keep_job_selector(old: dict[str, Any], new: dict[str, Any]) -> None:
        spec = new.setdefault("spec", {})
        if "selector" in old.get("spec", {}):
            spec["selector"] = old["spec"]["selector"]
        old_labels = ((old["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {})
        for key in (
            "batch.kubernetes.io/controller-uid",
            "batch.kubernetes.io/job-name",
            "controller-uid",
            "job-name",
        ):
            if key in old_labels:
                labels.setdefault(key, old_labels[key])

    def delete_object(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        grace: float | None = None,
        propagation: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete as the API server does; pods with a grace period go through their kubelet."""
        ns = namespace if resource.namespaced else ""
        obj = self.store.get(resource, ns, name)
        if obj is None:
            raise not_found(resource.group, resource.plural, name)
        meta = obj["metadata"]
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {resource.plural} "{name}": Precondition failed: UID in precondition: {preconditions["uid"]}, UID in object meta: {meta["uid"]}',
                    {"name": name, "kind": resource.plural},
                )
            if (
                preconditions.get("resourceVersion")
                and preconditions["resourceVersion"] != meta["resourceVersion"]
            ):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {resource.plural} "{name}": Precondition failed: ResourceVersion in precondition: {preconditions["resourceVersion"]}, ResourceVersion in object meta: {meta["resourceVersion"]}',
                    {"name": name, "kind": resource.plural},
                )
        if dry_run:
            return obj
        if resource.key == POD.key:
            return self._delete_pod(obj, grace)
        if propagation == "Orphan" or (propagation is None and resource.key == JOB.key):
            self.orphan_uids[meta["uid"]] = True
        if resource.key == NAMESPACE.key:
            return self._delete_namespace(obj)
        self.store.delete(resource, ns, name)
        details: dict[str, Any] = {"name": name}
        if resource.group:
            details["group"] = resource.group
        details["kind"] = resource.plural
        details["uid"] = meta["uid"]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }

    def _delete_pod(self, pod: dict[str, Any], grace: float | None) -> dict[str, Any]:
        meta = pod["metadata"]
        if grace is None:
            grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        runner = self.kubelet.pods.get(meta["uid"])
        if meta.get("deletionTimestamp") and grace > 0:
            return pod
        marked = copy.deepcopy(pod)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339(time.time() + grace)
        marked["metadata"]["deletionGracePeriodSeconds"] = int(grace)
        if grace <= 0 or runner is None or not runner.live_processes():
            self.store.delete(POD, meta["namespace"], meta["name"])
            return marked
        return self.store.update(POD, marked)

    def _delete_namespace(self, ns: dict[str, Any]) -> dict[str, Any]:
        name = ns["metadata"]["name"]
        marked = copy.deepcopy(ns)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339()
        marked["status"] = {"phase": "Terminating"}
        marked = self.store.update(NAMESPACE, marked)
        asyncio.ensure_future(self._finish_namespace(name))
        return marked

    async def _finish_namespace(self, name: str) -> None:
        for resource, obj in list(self.store.all_objects()):
            if resource.namespaced and obj["metadata"].get("namespace") == name:
                with contextlib.suppress(ApiError):
                    self.delete_object(
                        resource,
                        name,
                        obj["metadata"]["name"],
                        grace=None,
                        propagation="Background",
                    )
        for _ in range(200):
            if not any(
                r.namespaced and o["metadata"].get("namespace") == name and r.key == POD.key
                for r, o in self.store.all_objects()
            ):
                break
            await asyncio.sleep(0.05)
        for resource, obj in list(self.store.all_objects()):
            if resource.namespaced and obj["metadata"].get("namespace") == name:
                self.store.delete(resource, name, obj["metadata"]["name"])
        self.store.delete(NAMESPACE, "", name)

    # ---- events ----------------------------------------------------------------------------------
    def record_event(
        self,
        resource: Resource,
        obj: dict[str, Any],
        kind: str,
        reason: str,
        message: str,
        component: str,
        field_path: str | None = None,
    ) -> None:
        """Record an Event about an object, counting repeats as the event recorder does."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        if self.store.get(NAMESPACE, "", namespace) is None:
            return
        key = (meta.get("uid", ""), field_path or "", reason, message, kind, component)
        now = now_rfc3339()
        existing_name = self._event_index.get(key)
        if existing_name:
            existing = self.store.get(EVENT, namespace, existing_name)
            if existing is not None:
                updated = copy.deepcopy(existing)
                updated["count"] = int(existing.get("count", 1)) + 1
                updated["lastTimestamp"] = now
                self.store.update(EVENT, updated)
                return
        involved: dict[str, Any] = {
            "kind": resource.kind,
            "namespace": namespace,
            "name": meta["name"],
            "uid": meta.get("uid", ""),
            "apiVersion": resource.api_version,
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        name = f"{meta['name']}.{time.time_ns():x}"
        source: dict[str, Any] = {"component": component}
        if component == "kubelet":
            source["host"] = self.node_name
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": kind,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": self.node_name if component == "kubelet" else "",
        }
        with contextlib.suppress(ApiError):
            self.store.create(EVENT, event)
            self._event_index[key] = name
            if len(self._event_index) > 20000:
                self._event_index.clear()
