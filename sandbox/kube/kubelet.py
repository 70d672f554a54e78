"""Pods run for real: each container is a local process group, watched like a kubelet would.

Limits of running without a container runtime, by design:
- the image is only recorded, except an image pinned by digest, whose archive
  ``<images-dir>/sha256-<hex>.tar.gz`` is unpacked into the container's directory;
- a volume's ``mountPath`` (and the termination message path) seen in command, args,
  workingDir or env values is rewritten to the pod's directory for that volume;
- every port of the pod (containerPort, probe ports, Service targetPort) is the one loopback
  port given to the pod in ``$PORT``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.kube.logs import LogBuffer
from sandbox.kube.meta import now_rfc3339, parse_quantity
from sandbox.kube.objects import qos_class
from sandbox.kube.resources import CONFIGMAP, POD, SECRET
from sandbox.kube.store import Change

if TYPE_CHECKING:
    from sandbox.kube.site import Site

log = logging.getLogger(__name__)

FAULT_ANNOTATION = "sandbox.sre.io/fault"
DIGEST_IMAGE = re.compile(r"@sha256:([0-9a-f]{64})$")
IMAGE_CONFIG_FILE = ".sandbox-image.json"
BACKOFF_START = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET_AFTER = 600.0


class ConfigError(Exception):
    """A container cannot be configured yet (missing ConfigMap, Secret or key)."""


def pod_fault(meta: dict[str, Any]) -> tuple[str, float]:
    """The fault annotation of a pod as (name, parameter)."""
    value = str((meta.get("annotations") or {}).get(FAULT_ANNOTATION, "")).strip()
    name, _, param = value.partition("=")
    try:
        number = float(param) if param else 0.0
    except ValueError:
        number = 0.0
    return name.strip(), number


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_by_group(groups: set[int]) -> dict[int, int]:
    """Resident memory in bytes per process group, read from /proc in one pass."""
    page = os.sysconf("SC_PAGE_SIZE")
    totals: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        try:
            pgrp = int(fields[2])
            rss = int(fields[21])
        except (IndexError, ValueError):
            continue
        if pgrp in groups:
            totals[pgrp] = totals.get(pgrp, 0) + rss * page
    return totals


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_refs(value: str, env: dict[str, str]) -> str:
    """Expand ``$(VAR)`` references like the kubelet; ``$$`` is a literal ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REF.sub(replace, value)


class Container:
    """Runtime state of one container of a pod."""

    def __init__(self, spec: dict[str, Any], init: bool) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.init = init
        self.state: dict[str, Any] = {"waiting": {"reason": "PodInitializing"}}
        self.last_state: dict[str, Any] = {}
        self.restart_count = 0
        self.ready = False
        self.started = False
        self.ever_started = False
        self.started_ts = 0.0
        self.logs: LogBuffer | None = None
        self.previous_logs: LogBuffer | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.pgid: int | None = None
        self.kill_reason: str | None = None
        self.kill_code: int | None = None
        self.container_id = ""
        self.image_id = ""
        self.image_root: Path | None = None
        self.memory_limit: float | None = None
        self.backoff = BACKOFF_START
        self.instance = 0
        self.startup: asyncio.Future[bool] | None = None
        limits = (spec.get("resources") or {}).get("limits") or {}
        if limits.get("memory"):
            self.memory_limit = parse_quantity(limits["memory"])

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "state": copy.deepcopy(self.state),
            "lastState": copy.deepcopy(self.last_state),
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.spec.get("image", ""),
            "imageID": self.image_id,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        status["started"] = self.started
        return status


class PodRunner:
    """Drives one pod from Pending to its end, and kills it when deleted."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.kubelet = kubelet
        self.site = kubelet.site
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.name: str = meta["name"]
        self.namespace: str = meta["namespace"]
        self.spec = copy.deepcopy(pod["spec"])
        self.meta = copy.deepcopy(meta)
        self.fault, self.fault_param = pod_fault(meta)
        self.dir = self.site.state_dir / "pods" / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.port = 0
        self.policy = self.spec.get("restartPolicy", "Always")
        self.inits = [Container(c, True) for c in self.spec.get("initContainers") or []]
        self.mains = [Container(c, False) for c in self.spec.get("containers") or []]
        if not self.inits:
            for container in self.mains:
                container.state = {"waiting": {"reason": "ContainerCreating"}}
        self.by_name = {c.name: c for c in self.inits + self.mains}
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        self.scheduled: bool | None = None
        self.initialized = not self.inits
        self.sandbox_ready = False
        self.start_time: str | None = None
        self.conditions: dict[str, dict[str, Any]] = {}
        self.terminating = False
        self.finished = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self.main_task: asyncio.Task[None] | None = None
        self.deadline_task: asyncio.Task[None] | None = None

    # ---- status -----------------------------------------------------------------------
    def _condition(
        self, kind: str, status: bool, reason: str | None = None, message: str | None = None
    ) -> None:
        value = "True" if status else "False"
        current = self.conditions.get(kind)
        if current and current["status"] == value and current.get("reason") == reason:
            return
        cond: dict[str, Any] = {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": now_rfc3339()
            if not current or current["status"] != value
            else current["lastTransitionTime"],
        }
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        self.conditions[kind] = cond

    def _compute_phase(self) -> str:
        if self.phase in ("Succeeded", "Failed"):
            return self.phase
        if not self.scheduled or not self.initialized:
            return "Pending"
        states = [c.state for c in self.mains]
        if any("running" in s for s in states):
            return "Running"
        if all("terminated" in s for s in states) and not self._will_restart():
            codes = [s["terminated"].get("exitCode", 0) for s in states]
            return "Succeeded" if all(code == 0 for code in codes) else "Failed"
        if any(c.ever_started for c in self.mains):
            return "Running"
        return "Pending"

    def _will_restart(self) -> bool:
        if self.terminating:
            return False
        if self.policy == "Always":
            return True
        if self.policy == "OnFailure":
            return any(c.state.get("terminated", {}).get("exitCode", 0) != 0 for c in self.mains)
        return False

    def build_status(self) -> dict[str, Any]:
        self.phase = self._compute_phase()
        if self.scheduled:
            self._condition(
                "PodReadyToStartContainers", self.sandbox_ready and not self.finished_sandbox()
            )
            if self.initialized:
                self._condition("Initialized", True)
            else:
                pending = [
                    c.name for c in self.inits if c.state.get("terminated", {}).get("exitCode") != 0
                ]
                self._condition(
                    "Initialized",
                    False,
                    "ContainersNotInitialized",
                    f"containers with incomplete status: [{' '.join(pending)}]",
                )
            unready = [c.name for c in self.mains if not c.ready]
            if self.phase in ("Succeeded", "Failed"):
                self._condition("ContainersReady", False, "PodCompleted")
                self._condition("Ready", False, "PodCompleted")
            elif unready:
                message = f"containers with unready status: [{' '.join(unready)}]"
                self._condition("ContainersReady", False, "ContainersNotReady", message)
                self._condition("Ready", False, "ContainersNotReady", message)
            else:
                self._condition("ContainersReady", True)
                self._condition("Ready", True)
        order = [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ]
        status: dict[str, Any] = {
            "phase": self.phase,
            "conditions": [self.conditions[k] for k in order if k in self.conditions],
        }
        if self.reason:
            status["reason"] = self.reason
        if self.message:
            status["message"] = self.message
        if self.scheduled:
            status["hostIP"] = "127.0.0.1"
            status["hostIPs"] = [{"ip": "127.0.0.1"}]
            if self.sandbox_ready:
                status["podIP"] = "127.0.0.1"
                status["podIPs"] = [{"ip": "127.0.0.1"}]
            status["startTime"] = self.start_time
            if self.inits:
                status["initContainerStatuses"] = [c.status() for c in self.inits]
            status["containerStatuses"] = [c.status() for c in self.mains]
        status["qosClass"] = self.kubelet.qos(self.spec)
        return status

    def finished_sandbox(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def sync(self) -> None:
        """Write the pod's status to the store if it changed."""
        pod = self.site.store.get(POD, self.namespace, self.name)
        if pod is None or pod["metadata"]["uid"] != self.uid:
            return
        status = self.build_status()
        ready = self.conditions.get("Ready", {}).get("status") == "True"
        if ready:
            self.site.ready_since.setdefault(self.uid, time.time())
        else:
            self.site.ready_since.pop(self.uid, None)
        if pod.get("status") == status and (not self.scheduled or pod["spec"].get("nodeName")):
            return
        new = copy.deepcopy(pod)
        new["status"] = status
        if self.scheduled:
            new["spec"]["nodeName"] = self.site.node_name
        self.site.store.update(POD, new)

    def event(
        self,
        kind: str,
        reason: str,
        message: str,
        container: Container | None = None,
        component: str = "kubelet",
    ) -> None:
        pod = self.site.store.get(POD, self.namespace, self.name)
        if pod is None:
            return
        field_path = None
        if container is not None:
            group = "initContainers" if container.init else "containers"
            field_path = f"spec.{group}{{{container.name}}}"
        self.site.record_event(
            POD, pod, kind, reason, message, component=component, field_path=field_path
        )

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # ---- lifecycle ----------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod runner failed pod=%s/%s", self.namespace, self.name)

    async def _run(self) -> None:
        if self.fault == "unschedulable":
            self.scheduled = False
            message = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
            self.conditions["PodScheduled"] = {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": now_rfc3339(),
                "reason": "Unschedulable",
                "message": message,
            }
            self.sync()
            self.event("Warning", "FailedScheduling", message, component="default-scheduler")
            return
        self.scheduled = True
        self.start_time = now_rfc3339()
        self._condition("PodScheduled", True)
        self.sync()
        self.event(
            "Normal",
            "Scheduled",
            f"Successfully assigned {self.namespace}/{self.name} to {self.site.node_name}",
            component="default-scheduler",
        )
        self.port = self.kubelet.allocate_port()
        deadline = self.spec.get("activeDeadlineSeconds")
        if deadline is not None:
            self.deadline_task = asyncio.ensure_future(self._active_deadline(float(deadline)))
        self._prepare_dirs()
        self.sandbox_ready = True
        self.sync()
        for container in self.inits:
            ok = await self._run_init(container)
            if not ok:
                self.phase = "Failed"
                self.sync()
                return
        self.initialized = True
        for container in self.mains:
            container.state = {"waiting": {"reason": "ContainerCreating"}}
        self.sync()
        await asyncio.gather(*(self._container_loop(c) for c in self.mains))
        self.sync()

    async def _active_deadline(self, seconds: float) -> None:
        """Fail the pod once it has been active longer than activeDeadlineSeconds (wall clock)."""
        await asyncio.sleep(seconds)
        if self.terminating or self.phase in ("Succeeded", "Failed"):
            return
        self.reason = "DeadlineExceeded"
        self.message = "Pod was active on the node longer than the specified deadline"
        self.event("Normal", "DeadlineExceeded", self.message)
        await self.terminate(float(self.spec.get("terminationGracePeriodSeconds", 30)))
        self.phase = "Failed"
        self.sync()

    async def _run_init(self, container: Container) -> bool:
        while not self.terminating:
            code = await self._run_once(container)
            if code is None:
                return False
            if code == 0:
                return True
            if self.policy == "Never":
                return False
            await self._back_off(container)
        return False

    async def _container_loop(self, container: Container) -> None:
        while not self.terminating:
            code = await self._run_once(container)
            if code is None or self.terminating:
                return
            restart = self.policy == "Always" or (self.policy == "OnFailure" and code != 0)
            if not restart:
                self.sync()
                return
            await self._back_off(container)

    async def _back_off(self, container: Container) -> None:
        if time.time() - container.started_ts > BACKOFF_RESET_AFTER:
            container.backoff = BACKOFF_START
        delay = container.backoff
        container.backoff = min(container.backoff * 2, BACKOFF_MAX)
        container.last_state = {"terminated": dict(container.state.get("terminated", {}))}
        message = f"back-off {int(delay)}s restarting failed container={container.name} pod={self.name}_{self.namespace}({self.uid})"
        container.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        container.ready = False
        container.started = False
        self.sync()
        self.event(
            "Warning",
            "BackOff",
            f"Back-off restarting failed container {container.name} in pod {self.name}_{self.namespace}({self.uid})",
            container,
        )
        await asyncio.sleep(delay / self.site.speed)
        container.restart_count += 1

    async def _pull(self, container: Container) -> bool:
        image = str(container.spec.get("image", ""))
        digest = DIGEST_IMAGE.search(image)
        failing = self.fault == "image-pull-error"
        archive = self.site.images_dir / f"sha256-{digest.group(1)}.tar.gz" if digest else None
        delay = BACKOFF_START
        first = True
        while not self.terminating:
            if not failing and (archive is None or archive.is_file()):
                break
            error = f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": failed to resolve reference "{image}": {image}: not found'
            if first:
                self.event("Normal", "Pulling", f'Pulling image "{image}"', container)
            container.state = {"waiting": {"reason": "ErrImagePull", "message": error}}
            self.sync()
            self.event("Warning", "Failed", f'Failed to pull image "{image}": {error}', container)
            self.event("Warning", "Failed", "Error: ErrImagePull", container)
            await asyncio.sleep(min(1.0, delay) / self.site.speed)
            if self.terminating:
                break
            container.state = {
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": f'Back-off pulling image "{image}": ErrImagePull: {error}',
                }
            }
            self.sync()
            self.event("Normal", "BackOff", f'Back-off pulling image "{image}"', container)
            self.event("Warning", "Failed", "Error: ImagePullBackOff", container)
            await asyncio.sleep(delay / self.site.speed)
            delay = min(delay * 2, BACKOFF_MAX)
            first = False
        if self.terminating:
            return False
        if container.image_root is not None:
            return True
        root = self.dir / "containers" / container.name
        if archive is not None and digest is not None:
            started = time.monotonic()
            self.event("Normal", "Pulling", f'Pulling image "{image}"', container)
            await asyncio.to_thread(self._extract, archive, root)
            elapsed = int((time.monotonic() - started) * 1000)
            size = archive.stat().st_size
            self.event(
                "Normal",
                "Pulled",
                f'Successfully pulled image "{image}" in {elapsed}ms ({elapsed}ms including waiting). Image size: {size} bytes.',
                container,
            )
            container.image_id = f"{image.split('@')[0]}@sha256:{digest.group(1)}"
        else:
            self.event(
                "Normal",
                "Pulled",
                f'Container image "{image}" already present on machine',
                container,
            )
            container.image_id = (
                f"{image.split(':')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
            )
        container.image_root = root
        return True

    @staticmethod
    def _extract(archive: Path, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(root, filter="data")

    def _prepare_dirs(self) -> None:
        (self.dir / "containers").mkdir(parents=True, exist_ok=True)
        (self.dir / "volumes").mkdir(parents=True, exist_ok=True)
        (self.dir / "termination").mkdir(parents=True, exist_ok=True)
        for container in self.inits + self.mains:
            (self.dir / "containers" / container.name).mkdir(parents=True, exist_ok=True)
        for volume in self.spec.get("volumes") or []:
            target = self.volume_dir(volume)
            if target is None:
                continue
            target.mkdir(parents=True, exist_ok=True)
            source = volume.get("configMap") or volume.get("secret")
            if source is None:
                continue
            is_secret = "secret" in volume
            ref = source.get("secretName") if is_secret else source.get("name")
            obj = self.site.store.get(SECRET if is_secret else CONFIGMAP, self.namespace, ref or "")
            data = dict((obj or {}).get("data") or {})
            items = source.get("items")
            pairs = (
                [(i["key"], i.get("path", i["key"])) for i in items]
                if items
                else [(k, k) for k in data]
            )
            for key, rel in pairs:
                if key not in data:
                    continue
                value = base64.b64decode(data[key]) if is_secret else str(data[key]).encode()
                path = target / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(value)
            if not is_secret:
                for key, value in ((obj or {}).get("binaryData") or {}).items():
                    (target / key).write_bytes(base64.b64decode(value))

    def volume_dir(self, volume: dict[str, Any]) -> Path | None:
        if "hostPath" in volume:
            return Path(volume["hostPath"].get("path", "/"))
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"].get("claimName", volume["name"])
            return self.site.state_dir / "claims" / self.namespace / claim
        return self.dir / "volumes" / volume["name"]

    # ---- one container instance -----------------------------------------------------------
    def _mounts(self, container: Container) -> list[tuple[str, str]]:
        volumes = {v["name"]: v for v in self.spec.get("volumes") or []}
        mounts: list[tuple[str, str]] = []
        for mount in container.spec.get("volumeMounts") or []:
            volume = volumes.get(mount.get("name", ""))
            if volume is None:
                continue
            target = self.volume_dir(volume)
            if target is None:
                continue
            if mount.get("subPath"):
                target = target / mount["subPath"]
                target.mkdir(parents=True, exist_ok=True)
            mounts.append((str(mount["mountPath"]).rstrip("/") or "/", str(target)))
        term_path = container.spec.get("terminationMessagePath", "/dev/termination-log")
        mounts.append((term_path, str(self.dir / "termination" / container.name)))
        mounts.sort(key=lambda m: len(m[0]), reverse=True)
        return mounts

    @staticmethod
    def _rewrite(value: str, mounts: list[tuple[str, str]]) -> str:
        """Point mount paths at the pod's directories; a path that exists on the host stays."""
        for mount_path, host_dir in mounts:
            if mount_path == "/":
                continue
            pattern = r"(?<![\w./-])" + re.escape(mount_path) + r"(?=$|/|[^\w.-])"

            def replace(
                match: re.Match[str], mount: str = mount_path, target: str = host_dir
            ) -> str:
                token = re.match(r"[^\s'\";:,=]*", match.string[match.start() :])
                path = token.group(0) if token else mount
                if path != mount and os.path.exists(path):
                    return mount
                return target

            value = re.sub(pattern, replace, value)
        return value

    def _lookup(self, kind: str, ref: dict[str, Any], key: str | None) -> str | None:
        resource = SECRET if kind == "secret" else CONFIGMAP
        label = "Secret" if kind == "secret" else "ConfigMap"
        obj = self.site.store.get(resource, self.namespace, ref.get("name", ""))
        if obj is None:
            if ref.get("optional"):
                return None
            raise ConfigError(f'{kind} "{ref.get("name", "")}" not found')
        if key is None:
            return ""
        data = obj.get("data") or {}
        if key not in data:
            if ref.get("optional"):
                return None
            raise ConfigError(
                f"couldn't find key {key} in {label} {self.namespace}/{ref.get('name', '')}"
            )
        value = data[key]
        return (
            base64.b64decode(value).decode("utf-8", "replace") if kind == "secret" else str(value)
        )

    def _field_ref(self, path: str) -> str:
        pod = self.site.store.get(POD, self.namespace, self.name) or {
            "metadata": self.meta,
            "spec": self.spec,
        }
        match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if match:
            return str((pod["metadata"].get(match.group(1)) or {}).get(match.group(2), ""))
        values = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.site.node_name,
            "spec.serviceAccountName": self.spec.get("serviceAccountName", "default"),
            "status.podIP": "127.0.0.1",
            "status.podIPs": "127.0.0.1",
            "status.hostIP": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
        }
        return values.get(path, "")

    def _resource_ref(self, container: Container, ref: dict[str, Any]) -> str:
        target = self.by_name.get(ref.get("containerName") or container.name, container)
        section, _, name = str(ref.get("resource", "")).partition(".")
        value = ((target.spec.get("resources") or {}).get(section) or {}).get(name)
        if value is None:
            return "0"
        divisor = parse_quantity(ref.get("divisor", "1"))
        number = parse_quantity(value) / (divisor or 1)
        return str(int(-(-number // 1)))

    def _image_config(self, container: Container) -> dict[str, Any]:
        if container.image_root is None:
            return {}
        path = container.image_root / IMAGE_CONFIG_FILE
        if not path.is_file():
            return {}
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return {}

    def _environment(self, container: Container, mounts: list[tuple[str, str]]) -> dict[str, str]:
        root = str(container.image_root)
        env: dict[str, str] = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": root,
            "HOSTNAME": self.name,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.site.api_port),
        }
        for name in ("LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            if name in os.environ:
                env[name] = os.environ[name]
        for item in self._image_config(container).get("Env") or []:
            key, _, text = str(item).partition("=")
            env[key] = text
        for source in container.spec.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind in ("configMapRef", "secretRef"):
                ref = source.get(kind)
                if ref is None:
                    continue
                resource = SECRET if kind == "secretRef" else CONFIGMAP
                obj = self.site.store.get(resource, self.namespace, ref.get("name", ""))
                if obj is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(
                        f'{"secret" if kind == "secretRef" else "configmap"} "{ref.get("name", "")}" not found'
                    )
                for key, data in (obj.get("data") or {}).items():
                    env[prefix + key] = (
                        base64.b64decode(data).decode("utf-8", "replace")
                        if kind == "secretRef"
                        else str(data)
                    )
        for item in container.spec.get("env") or []:
            name = item["name"]
            if "valueFrom" in item:
                source = item["valueFrom"]
                value: str | None
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    value = self._lookup("configmap", ref, ref.get("key"))
                elif "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    value = self._lookup("secret", ref, ref.get("key"))
                elif "fieldRef" in source:
                    value = self._field_ref(source["fieldRef"].get("fieldPath", ""))
                elif "resourceFieldRef" in source:
                    value = self._resource_ref(container, source["resourceFieldRef"])
                else:
                    value = ""
                if value is None:
                    continue
            else:
                value = expand_refs(str(item.get("value", "")), env)
            env[name] = self._rewrite(value, mounts)
        env["PORT"] = str(self.port)
        return env

    def _argv(
        self, container: Container, env: dict[str, str], mounts: list[tuple[str, str]]
    ) -> list[str]:
        config = self._image_config(container)
        command = container.spec.get("command")
        args = container.spec.get("args")
        if command is None:
            command = list(config.get("Entrypoint") or [])
            if args is None:
                args = list(config.get("Cmd") or [])
        argv = [
            self._rewrite(expand_refs(str(a), env), mounts)
            for a in list(command) + list(args or [])
        ]
        return argv

    def _workdir(self, container: Container, mounts: list[tuple[str, str]]) -> Path:
        root = container.image_root or (self.dir / "containers" / container.name)
        working = container.spec.get("workingDir") or self._image_config(container).get(
            "WorkingDir"
        )
        if not working:
            return root
        rewritten = self._rewrite(str(working), mounts)
        path = Path(rewritten) if rewritten != working else root / str(working).lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def _run_once(self, container: Container) -> int | None:
        """Start the container once and wait for its end; None when the pod is going away."""
        if not await self._pull(container):
            return None
        mounts = self._mounts(container)
        try:
            env = self._environment(container, mounts)
        except ConfigError as exc:
            container.state = {
                "waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}
            }
            self.sync()
            self.event("Warning", "Failed", f"Error: {exc}", container)
            await asyncio.sleep(BACKOFF_START / self.site.speed)
            return await self._run_once(container) if not self.terminating else None
        argv = self._argv(container, env, mounts)
        workdir = await asyncio.to_thread(self._workdir, container, mounts)
        term_file = self.dir / "termination" / container.name
        with contextlib.suppress(OSError):
            term_file.unlink()
        if container.logs is not None:
            container.previous_logs = container.logs
        container.logs = LogBuffer(self.site.log_max_bytes)
        container.instance += 1
        container.container_id = f"containerd://{secrets.token_hex(32)}"
        container.kill_reason = None
        container.kill_code = None
        started_at = now_rfc3339()
        container.started_ts = time.time()
        self.event("Normal", "Created", f"Created container: {container.name}", container)
        try:
            if not argv:
                raise FileNotFoundError("no command specified")
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=str(workdir),
                env=env,
                start_new_session=True,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError, OSError) as exc:
            detail = (
                "no command specified" if not argv else f'exec: "{argv[0]}": {exc.strerror or exc}'
            )
            message = f"failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: {detail}: unknown"
            container.logs.close()
            container.state = {
                "terminated": {
                    "exitCode": 128,
                    "reason": "StartError",
                    "message": message,
                    "startedAt": "1970-01-01T00:00:00Z",
                    "finishedAt": now_rfc3339(),
                    "containerID": container.container_id,
                }
            }
            self.event("Warning", "Failed", f"Error: {message}", container)
            self.sync()
            return 128
        container.process = process
        container.pgid = process.pid
        self.kubelet.track(process)
        container.started = True
        container.ever_started = True
        container.state = {"running": {"startedAt": started_at}}
        self.event("Normal", "Started", f"Started container {container.name}", container)
        reader = asyncio.ensure_future(self._read_output(process, container.logs))
        probes: list[asyncio.Task[Any]] = []
        if self.fault == "crashloop":
            container.kill_reason, container.kill_code = "Error", 1
            _kill_group(process.pid, signal.SIGKILL)
        elif not container.init:
            container.startup = asyncio.get_running_loop().create_future()
            probes.append(self.spawn(self._startup(container, container.instance)))
            probes.append(self.spawn(self._readiness(container, container.instance)))
            if container.spec.get("livenessProbe"):
                probes.append(self.spawn(self._liveness(container, container.instance)))
        self.sync()
        logs = container.logs
        try:
            returncode = await process.wait()
        finally:
            _kill_group(process.pid, signal.SIGKILL)
            for task in probes:
                task.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(reader), timeout=2.0)
            except (TimeoutError, asyncio.CancelledError):
                reader.cancel()
            logs.close()
            container.process = None
        code = returncode if returncode >= 0 else 128 - returncode
        reason = "Completed" if code == 0 else "Error"
        if container.kill_reason:
            reason, code = (
                container.kill_reason,
                container.kill_code if container.kill_code is not None else code,
            )
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started_at,
            "finishedAt": now_rfc3339(),
            "containerID": container.container_id,
        }
        message = await asyncio.to_thread(self._termination_message, container, term_file, code)
        if message:
            terminated["message"] = message
        container.state = {"terminated": terminated}
        container.ready = False
        container.started = False
        self.sync()
        return code

    @staticmethod
    def _termination_message(container: Container, path: Path, code: int) -> str:
        message = ""
        with contextlib.suppress(OSError):
            message = path.read_bytes()[:4096].decode("utf-8", "replace")
        if (
            not message
            and code != 0
            and container.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
            and container.logs
        ):
            tail = b"".join(line for _, line in container.logs.lines[-80:])[-2048:]
            message = tail.decode("utf-8", "replace")
        return message

    @staticmethod
    async def _read_output(process: asyncio.subprocess.Process, logs: LogBuffer) -> None:
        assert process.stdout is not None
        while True:
            chunk = await process.stdout.read(65536)
            if not chunk:
                return
            logs.feed(chunk)

    # ---- probes -----------------------------------------------------------------------------
    def _alive(self, container: Container, instance: int) -> bool:
        return (
            container.instance == instance
            and container.process is not None
            and not self.terminating
        )

    async def _startup(self, container: Container, instance: int) -> None:
        """Gate readiness and liveness on the startup probe; kill the container if it fails."""
        probe = container.spec.get("startupProbe")
        gate = container.startup
        passed = probe is None
        if probe is not None:
            container.started = False
            await asyncio.sleep(probe.get("initialDelaySeconds", 0) / self.site.speed)
            failures = 0
            while self._alive(container, instance):
                ok, detail = await self.kubelet.probe(self, container, probe)
                if ok:
                    passed = True
                    break
                failures += 1
                self.event("Warning", "Unhealthy", f"Startup probe failed: {detail}", container)
                if failures >= probe.get("failureThreshold", 3):
                    self.event(
                        "Normal",
                        "Killing",
                        f"Container {container.name} failed startup probe, will be restarted",
                        container,
                    )
                    if container.pgid is not None:
                        _kill_group(container.pgid, signal.SIGKILL)
                    break
                await asyncio.sleep(probe.get("periodSeconds", 10) / self.site.speed)
            if passed and self._alive(container, instance):
                container.started = True
                self.sync()
        if gate is not None and not gate.done():
            gate.set_result(passed)

    async def _started(self, container: Container) -> bool:
        gate = container.startup
        return True if gate is None else bool(await asyncio.shield(gate))

    async def _readiness(self, container: Container, instance: int) -> None:
        probe = container.spec.get("readinessProbe")
        if self.fault == "never-ready" or not await self._started(container):
            return
        if not probe:
            if self._alive(container, instance):
                container.ready = True
                self.sync()
            return
        speed = self.site.speed
        await asyncio.sleep(probe.get("initialDelaySeconds", 0) / speed)
        successes = failures = 0
        while self._alive(container, instance):
            ok, detail = await self.kubelet.probe(self, container, probe)
            if not self._alive(container, instance):
                return
            if ok:
                successes, failures = successes + 1, 0
                if successes >= probe.get("successThreshold", 1) and not container.ready:
                    container.ready = True
                    self.sync()
            else:
                successes, failures = 0, failures + 1
                self.event("Warning", "Unhealthy", f"Readiness probe failed: {detail}", container)
                if failures >= probe.get("failureThreshold", 3) and container.ready:
                    container.ready = False
                    self.sync()
            await asyncio.sleep(probe.get("periodSeconds", 10) / speed)

    async def _liveness(self, container: Container, instance: int) -> None:
        probe = container.spec["livenessProbe"]
        speed = self.site.speed
        if not await self._started(container):
            return
        await asyncio.sleep(probe.get("initialDelaySeconds", 0) / speed)
        failures = 0
        while self._alive(container, instance):
            ok, detail = await self.kubelet.probe(self, container, probe)
            if not self._alive(container, instance):
                return
            failures = 0 if ok else failures + 1
            if not ok:
                self.event("Warning", "Unhealthy", f"Liveness probe failed: {detail}", container)
            if failures >= probe.get("failureThreshold", 3):
                self.event(
                    "Normal",
                    "Killing",
                    f"Container {container.name} failed liveness probe, will be restarted",
                    container,
                )
                if container.pgid is not None:
                    _kill_group(container.pgid, signal.SIGKILL)
                return
            await asyncio.sleep(probe.get("periodSeconds", 10) / speed)

    # ---- termination ---------------------------------------------------------------------------
    def live_processes(self) -> bool:
        return any(c.process is not None for c in self.inits + self.mains)

    async def terminate(self, grace: float) -> None:
        """Stop every container: SIGTERM, then SIGKILL after the (capped) grace period."""
        self.terminating = True
        running = [c for c in self.inits + self.mains if c.process is not None]
        for container in running:
            self.event("Normal", "Killing", f"Stopping container {container.name}", container)
            if container.pgid is not None:
                _kill_group(container.pgid, signal.SIGTERM)
        deadline = time.monotonic() + min(max(grace, 0.0), self.site.max_grace_seconds)
        while any(c.process is not None for c in running) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for container in running:
            if container.pgid is not None:
                _kill_group(container.pgid, signal.SIGKILL)
        end = time.monotonic() + 2.0
        while any(c.process is not None for c in running) and time.monotonic() < end:
            await asyncio.sleep(0.02)
        if self.main_task is not None and not self.main_task.done():
            self.main_task.cancel()
        for task in list(self.tasks):
            task.cancel()

    def kill_now(self) -> None:
        self.terminating = True
        if self.deadline_task is not None:
            self.deadline_task.cancel()
        for container in self.inits + self.mains:
            if container.pgid is not None and container.process is not None:
                _kill_group(container.pgid, signal.SIGKILL)
            if container.logs is not None and container.process is None:
                container.logs.close()
        if self.main_task is not None and not self.main_task.done():
            self.main_task.cancel()
        for task in list(self.tasks):
            task.cancel()


class Kubelet:
    """Runs the pods of one site and enforces their memory limits."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.pods: dict[str, PodRunner] = {}
        self._ports: set[int] = set()
        self._memory_task: asyncio.Task[None] | None = None
        self._probe_session: Any = None
        self._children: set[asyncio.subprocess.Process] = set()
        site.store.add_listener(self._on_change)

    def track(self, process: asyncio.subprocess.Process) -> None:
        """Remember a child process so that shutdown can kill and reap it."""
        self._children = {p for p in self._children if p.returncode is None}
        self._children.add(process)

    def qos(self, spec: dict[str, Any]) -> str:
        return qos_class(spec)

    def allocate_port(self) -> int:
        for _ in range(50):
            port = free_port()
            if port not in self._ports:
                self._ports.add(port)
                return port
        return free_port()

    def runner_for(self, namespace: str, name: str) -> PodRunner | None:
        pod = self.site.store.get(POD, namespace, name)
        if pod is None:
            return None
        return self.pods.get(pod["metadata"]["uid"])

    def _on_change(self, change: Change) -> None:
        if change.resource.key != POD.key:
            return
        uid = change.obj["metadata"]["uid"]
        if change.type == "ADDED":
            runner = PodRunner(self, change.obj)
            self.pods[uid] = runner
            runner.main_task = asyncio.ensure_future(runner.run())
            self._ensure_memory_watch()
        elif change.type == "MODIFIED":
            current = self.pods.get(uid)
            if (
                current is not None
                and change.obj["metadata"].get("deletionTimestamp")
                and not current.terminating
            ):
                grace = float(change.obj["metadata"].get("deletionGracePeriodSeconds") or 0)
                asyncio.ensure_future(self._finish_deletion(current, grace))
        elif change.type == "DELETED":
            gone = self.pods.pop(uid, None)
            if gone is not None:
                gone.kill_now()
                self._release(gone)

    async def _finish_deletion(self, runner: PodRunner, grace: float) -> None:
        await runner.terminate(grace)
        runner.sync()
        pod = self.site.store.get(POD, runner.namespace, runner.name)
        if pod is not None and pod["metadata"]["uid"] == runner.uid:
            self.site.store.delete(POD, runner.namespace, runner.name)

    def _release(self, runner: PodRunner) -> None:
        self._ports.discard(runner.port)
        self.site.ready_since.pop(runner.uid, None)
        if not self.site.keep_pod_dirs:
            asyncio.get_running_loop().run_in_executor(
                None, lambda: shutil.rmtree(runner.dir, ignore_errors=True)
            )

    def _ensure_memory_watch(self) -> None:
        if self._memory_task is None or self._memory_task.done():
            self._memory_task = asyncio.ensure_future(self._watch_memory())

    async def _watch_memory(self) -> None:
        while True:
            limited = {
                c.pgid: (runner, c)
                for runner in self.pods.values()
                for c in runner.inits + runner.mains
                if c.memory_limit and c.process is not None and c.pgid is not None
            }
            if not self.pods:
                return
            if limited:
                usage = await asyncio.to_thread(_rss_by_group, set(limited))
                for pgid, rss in usage.items():
                    runner, container = limited[pgid]
                    if (
                        container.memory_limit
                        and rss > container.memory_limit
                        and container.process is not None
                    ):
                        log.info(
                            "memory limit exceeded pod=%s container=%s rss=%s",
                            runner.name,
                            container.name,
                            rss,
                        )
                        container.kill_reason, container.kill_code = "OOMKilled", 137
                        _kill_group(pgid, signal.SIGKILL)
            await asyncio.sleep(self.site.memory_poll_seconds)

    async def probe(
        self, runner: PodRunner, container: Container, probe: dict[str, Any]
    ) -> tuple[bool, str]:
        timeout = float(probe.get("timeoutSeconds", 1))
        port = runner.port
        try:
            if "httpGet" in probe:
                return await self._http_probe(probe["httpGet"], port, timeout)
            if "tcpSocket" in probe or "grpc" in probe:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), timeout
                )
                writer.close()
                return True, ""
            if "exec" in probe:
                return await self._exec_probe(
                    runner, container, probe["exec"].get("command") or [], timeout
                )
        except TimeoutError:
            return False, f"probe timed out after {timeout:g}s"
        except ConnectionRefusedError:
            return False, f"dial tcp 127.0.0.1:{port}: connect: connection refused"
        except OSError as exc:
            return False, f"dial tcp 127.0.0.1:{port}: connect: {exc.strerror or exc}"
        return True, ""

    async def _http_probe(
        self, spec: dict[str, Any], port: int, timeout: float
    ) -> tuple[bool, str]:
        import aiohttp

        if self._probe_session is None or self._probe_session.closed:
            self._probe_session = aiohttp.ClientSession(auto_decompress=False)
        path = spec.get("path", "/")
        url = f"http://127.0.0.1:{port}{path if path.startswith('/') else '/' + path}"
        headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
        headers.setdefault("User-Agent", "kube-probe/1.32")
        try:
            async with self._probe_session.get(
                url,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as resp:
                await resp.read()
                if 200 <= resp.status < 400:
                    return True, ""
                return False, f"HTTP probe failed with statuscode: {resp.status}"
        except aiohttp.ClientConnectorError as exc:
            reason = (
                "connection refused"
                if isinstance(exc.os_error, ConnectionRefusedError)
                else str(exc.os_error or exc)
            )
            return False, f'Get "{url}": dial tcp 127.0.0.1:{port}: connect: {reason}'
        except aiohttp.ClientError as exc:
            return False, f'Get "{url}": {exc}'

    async def _exec_probe(
        self, runner: PodRunner, container: Container, command: list[str], timeout: float
    ) -> tuple[bool, str]:
        mounts = runner._mounts(container)
        try:
            env = runner._environment(container, mounts)
        except ConfigError as exc:
            return False, str(exc)
        argv = [runner._rewrite(expand_refs(str(a), env), mounts) for a in command]
        workdir = runner._workdir(container, mounts)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=str(workdir),
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return False, f"exec failed: {exc}"
        self.track(process)
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            _kill_group(process.pid, signal.SIGKILL)
            await process.wait()
            return False, f'command timed out: "{" ".join(argv)}" timed out after {timeout:g}s'
        finally:
            if process.returncode is None:
                _kill_group(process.pid, signal.SIGKILL)
        if process.returncode == 0:
            return True, ""
        return False, output.decode("utf-8", "replace").strip()

    async def shutdown(self) -> None:
        for runner in list(self.pods.values()):
            runner.kill_now()
        children = [p for p in self._children if p.returncode is None]
        for process in children:
            _kill_group(process.pid, signal.SIGKILL)
        await asyncio.sleep(0)
        for process in children:
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(process.wait(), 2.0)
        for runner in list(self.pods.values()):
            for container in runner.inits + runner.mains:
                if container.process is not None:
                    with contextlib.suppress(TimeoutError, ProcessLookupError):
                        await asyncio.wait_for(container.process.wait(), 2.0)
        if self._memory_task is not None:
            self._memory_task.cancel()
        if self._probe_session is not None:
            await self._probe_session.close()
