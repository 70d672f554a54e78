"""Controllers: ReplicaSets, Deployments (rolling and recreate), Jobs and garbage collection.

They follow the upstream controllers' rules (surge and unavailability budgets, revision
annotations, progress conditions, job back-off) and act only through the site's object API,
so every step is seen by watches as on a real cluster.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from sandbox.kube.meta import now_rfc3339, parse_rfc3339, random_suffix, safe_encode
from sandbox.kube.resources import DEPLOYMENT, EVENT, JOB, NAMESPACE, POD, REPLICASET, Resource
from sandbox.kube.store import Change

if TYPE_CHECKING:
    from sandbox.kube.site import Site

log = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
Key = tuple[str, str, str]


def owner_uids(obj: dict[str, Any]) -> list[str]:
    return [ref.get("uid", "") for ref in obj["metadata"].get("ownerReferences") or []]


def controller_of(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return dict(ref)
    return None


def pod_active(pod: dict[str, Any]) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def pod_ready(pod: dict[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def template_without_hash(template: dict[str, Any]) -> dict[str, Any]:
    clone = copy.deepcopy(template)
    labels = (clone.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return clone


def template_hash(template: dict[str, Any], collisions: int = 0) -> str:
    data = json.dumps(template_without_hash(template), sort_keys=True).encode()
    value = fnv32a(data + (str(collisions).encode() if collisions else b""))
    return safe_encode(value)


def resolve_fenceposts(spec: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as numbers, rounding like the deployment controller."""
    replicas = int(spec.get("replicas", 1))
    rolling = ((spec.get("strategy") or {}).get("rollingUpdate")) or {}

    def resolve(value: Any, round_up: bool) -> int:
        if value is None:
            value = "25%"
        if isinstance(value, str) and value.endswith("%"):
            amount = float(value[:-1]) * replicas / 100
            return math.ceil(amount) if round_up else math.floor(amount)
        return int(value)

    surge = resolve(rolling.get("maxSurge"), True)
    unavailable = resolve(rolling.get("maxUnavailable"), False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def _revision(obj: dict[str, Any]) -> int:
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _compact(status: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k in keep or v not in (0, None, [], {})}


class Controllers:
    """One work queue for every controller of the site, fed by store changes and timers."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.store = site.store
        self._queue: dict[Key, None] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._progress_at: dict[str, float] = {}
        self._job_counts: dict[str, dict[str, set[str]]] = {}
        self._job_backoff_until: dict[str, float] = {}
        self._timers: list[asyncio.TimerHandle] = []
        self.store.add_listener(self._on_change)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())
        self._sweeper = asyncio.ensure_future(self._sweep_events())

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in (self._task, self._sweeper):
            if task is not None:
                task.cancel()

    async def _sweep_events(self) -> None:
        """Drop events older than the TTL, as the API server's event expiry does."""
        ttl = float(self.site.options.event_ttl_seconds)
        while True:
            await asyncio.sleep(min(60.0, max(ttl / 4, 1.0)))
            cutoff = time.time() - ttl
            for event in self.store.items(EVENT):
                stamp = event.get("lastTimestamp") or event["metadata"].get("creationTimestamp")
                if stamp and parse_rfc3339(stamp) < cutoff:
                    self.store.delete(
                        EVENT, event["metadata"]["namespace"], event["metadata"]["name"]
                    )

    def enqueue(self, resource: Resource, namespace: str, name: str, delay: float = 0.0) -> None:
        key = (resource.key, namespace, name)
        if delay > 0:
            loop = asyncio.get_running_loop()
            self._timers = [t for t in self._timers if not t.cancelled()][-500:]
            self._timers.append(loop.call_later(delay, self._put, key))
        else:
            self._put(key)

    def _put(self, key: Key) -> None:
        self._queue[key] = None
        self._wakeup.set()

    def _on_change(self, change: Change) -> None:
        obj = change.obj
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        key = change.resource.key
        if key in (DEPLOYMENT.key, REPLICASET.key, JOB.key):
            self.enqueue(change.resource, ns, meta["name"])
        if key in (REPLICASET.key, POD.key):
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "ReplicaSet":
                    self.enqueue(REPLICASET, ns, ref["name"])
                elif ref.get("kind") == "Deployment":
                    self.enqueue(DEPLOYMENT, ns, ref["name"])
                elif ref.get("kind") == "Job":
                    self.enqueue(JOB, ns, ref["name"])
        if change.type == "DELETED":
            self._put(("gc", ns, meta.get("uid", "")))

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                key = next(iter(self._queue))
                del self._queue[key]
                try:
                    self._reconcile(key)
                except Exception:
                    log.exception("controller failed key=%s", key)
                await asyncio.sleep(0)

    def _reconcile(self, key: Key) -> None:
        kind, ns, name = key
        if kind == "gc":
            self._collect(ns, name)
        elif kind == REPLICASET.key:
            self._sync_replicaset(ns, name)
        elif kind == DEPLOYMENT.key:
            self._sync_deployment(ns, name)
        elif kind == JOB.key:
            self._sync_job(ns, name)

    # ---- garbage collection ---------------------------------------------------------------
    def _collect(self, namespace: str, uid: str) -> None:
        orphan = self.site.orphan_uids.pop(uid, False)
        for resource, obj in list(self.store.all_objects()):
            if resource.key == NAMESPACE.key or uid not in owner_uids(obj):
                continue
            meta = obj["metadata"]
            if orphan:
                new = copy.deepcopy(obj)
                new["metadata"]["ownerReferences"] = [
                    r for r in meta["ownerReferences"] if r.get("uid") != uid
                ]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self.store.update(resource, new)
            else:
                self.site.delete_object(
                    resource,
                    meta.get("namespace", ""),
                    meta["name"],
                    grace=None,
                    propagation="Background",
                )

    # ---- replicasets ----------------------------------------------------------------------
    def _owned_pods(self, namespace: str, uid: str) -> list[dict[str, Any]]:
        return [p for p in self.store.items(POD, namespace) if uid in owner_uids(p)]

    def _available(
        self, pod: dict[str, Any], min_ready: float, now: float
    ) -> tuple[bool, float | None]:
        """Whether a pod counts as available, and when it will if it is ready but not yet."""
        if not pod_ready(pod):
            return False, None
        since = self.site.ready_since.get(pod["metadata"]["uid"])
        if since is None:
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if cond.get("type") == "Ready" and cond.get("lastTransitionTime"):
                    since = parse_rfc3339(cond["lastTransitionTime"])
        since = since or now
        wait = min_ready / self.site.speed
        if min_ready <= 0 or since + wait <= now:
            return True, None
        return False, since + wait - now

    def _sync_replicaset(self, namespace: str, name: str) -> None:
        rs = self.store.get(REPLICASET, namespace, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        spec = rs["spec"]
        uid = rs["metadata"]["uid"]
        pods = self._owned_pods(namespace, uid)
        active = [p for p in pods if pod_active(p)]
        diff = int(spec.get("replicas", 1)) - len(active)
        if diff > 0:
            for _ in range(min(diff, 500)):
                self._create_pod(rs, "ReplicaSet", "replicaset-controller")
        elif diff < 0:

            def rank(pod: dict[str, Any]) -> tuple[int, int, int, float]:
                status = pod.get("status") or {}
                scheduled = 1 if pod["spec"].get("nodeName") else 0
                running = 1 if status.get("phase") == "Running" else 0
                ready = 1 if pod_ready(pod) else 0
                since = self.site.ready_since.get(pod["metadata"]["uid"], 0.0)
                return (scheduled, running, ready, -since)

            for pod in sorted(active, key=rank)[:-diff]:
                self.site.delete_object(POD, namespace, pod["metadata"]["name"], grace=None)
                self.site.record_event(
                    REPLICASET,
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    component="replicaset-controller",
                )
        active = [p for p in self._owned_pods(namespace, uid) if pod_active(p)]
        now = time.time()
        min_ready = float(spec.get("minReadySeconds", 0))
        available = 0
        soonest: float | None = None
        for pod in active:
            ok, wait = self._available(pod, min_ready, now)
            available += ok
            if wait is not None:
                soonest = wait if soonest is None else min(soonest, wait)
        if soonest is not None:
            self.enqueue(REPLICASET, namespace, name, soonest + 0.01)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        status = _compact(
            {
                "replicas": len(active),
                "fullyLabeledReplicas": sum(
                    1
                    for p in active
                    if all(
                        (p["metadata"].get("labels") or {}).get(k) == v
                        for k, v in template_labels.items()
                    )
                ),
                "readyReplicas": sum(1 for p in active if pod_ready(p)),
                "availableReplicas": available,
                "observedGeneration": rs["metadata"].get("generation", 1),
            },
            keep=("replicas",),
        )
        if rs.get("status") != status:
            new = copy.deepcopy(rs)
            new["status"] = status
            self.store.update(REPLICASET, new)

    def _create_pod(
        self, owner: dict[str, Any], kind: str, component: str
    ) -> dict[str, Any] | None:
        meta = owner["metadata"]
        template = copy.deepcopy(owner["spec"].get("template") or {})
        pod_meta = template.get("metadata") or {}
        pod_meta.pop("creationTimestamp", None)
        pod_meta.pop("name", None)
        pod_meta["namespace"] = meta["namespace"]
        pod_meta["generateName"] = meta["name"] + "-"
        pod_meta["ownerReferences"] = [
            {
                "apiVersion": owner.get("apiVersion", "apps/v1"),
                "kind": kind,
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": pod_meta,
            "spec": template.get("spec") or {},
        }
        created = self.site.create_object(POD, pod, namespace=meta["namespace"])
        resource = REPLICASET if kind == "ReplicaSet" else JOB
        self.site.record_event(
            resource,
            owner,
            "Normal",
            "SuccessfulCreate",
            f"Created pod: {created['metadata']['name']}",
            component=component,
        )
        return created

    # ---- deployments ------------------------------------------------------------------------
    def _owned_replicasets(self, deploy: dict[str, Any]) -> list[dict[str, Any]]:
        uid = deploy["metadata"]["uid"]
        items = [
            rs
            for rs in self.store.items(REPLICASET, deploy["metadata"]["namespace"])
            if uid in owner_uids(rs)
        ]
        return sorted(
            items, key=lambda rs: (rs["metadata"].get("creationTimestamp", ""), _revision(rs))
        )

    def _scale(self, deploy: dict[str, Any], rs: dict[str, Any], replicas: int) -> dict[str, Any]:
        current = int(rs["spec"].get("replicas", 0))
        surge, _ = resolve_fenceposts(deploy["spec"])
        annotations = {
            DESIRED: str(deploy["spec"].get("replicas", 1)),
            MAX_REPLICAS: str(int(deploy["spec"].get("replicas", 1)) + surge),
        }
        if current == replicas and all(
            (rs["metadata"].get("annotations") or {}).get(k) == v for k, v in annotations.items()
        ):
            return rs
        new = copy.deepcopy(rs)
        new["spec"]["replicas"] = replicas
        new["metadata"].setdefault("annotations", {}).update(annotations)
        if current != replicas:
            new["metadata"]["generation"] = new["metadata"].get("generation", 1) + 1
        updated = self.store.update(REPLICASET, new)
        if current != replicas:
            direction = "up" if replicas > current else "down"
            self.site.record_event(
                DEPLOYMENT,
                deploy,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs['metadata']['name']} from {current} to {replicas}",
                component="deployment-controller",
            )
        return updated

    def _new_replicaset(
        self, deploy: dict[str, Any], revision: int, replicas: int
    ) -> dict[str, Any]:
        meta = deploy["metadata"]
        template = copy.deepcopy(deploy["spec"]["template"])
        collisions = int((deploy.get("status") or {}).get("collisionCount", 0))
        while True:
            pod_hash = template_hash(template, collisions)
            name = f"{meta['name']}-{pod_hash}"
            existing = self.store.get(REPLICASET, meta["namespace"], name)
            if existing is None:
                break
            collisions += 1
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(deploy["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        surge, _ = resolve_fenceposts(deploy["spec"])
        annotations = {
            k: v
            for k, v in (meta.get("annotations") or {}).items()
            if k not in (REVISION, "kubectl.kubernetes.io/last-applied-configuration")
        }
        annotations.update(
            {
                REVISION: str(revision),
                DESIRED: str(deploy["spec"].get("replicas", 1)),
                MAX_REPLICAS: str(int(deploy["spec"].get("replicas", 1)) + surge),
            }
        )
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": deploy["spec"].get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        created = self.site.create_object(REPLICASET, rs, namespace=meta["namespace"])
        if replicas:
            self.site.record_event(
                DEPLOYMENT,
                deploy,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {name} from 0 to {replicas}",
                component="deployment-controller",
            )
        return created

    def _sync_deployment(self, namespace: str, name: str) -> None:
        deploy = self.store.get(DEPLOYMENT, namespace, name)
        if deploy is None or deploy["metadata"].get("deletionTimestamp"):
            return
        spec = deploy["spec"]
        replicas = int(spec.get("replicas", 1))
        rss = self._owned_replicasets(deploy)
        template = template_without_hash(spec["template"])
        new_rs = next(
            (rs for rs in rss if template_without_hash(rs["spec"]["template"]) == template), None
        )
        old_rss = [rs for rs in rss if rs is not new_rs]
        max_old = max((_revision(rs) for rs in old_rss), default=0)
        created = False
        if spec.get("paused"):
            self._sync_deployment_status(deploy, new_rs, old_rss, created)
            return
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        if new_rs is None:
            if strategy == "Recreate":
                initial = 0 if any(rs["spec"].get("replicas", 0) for rs in old_rss) else replicas
            else:
                surge, _ = resolve_fenceposts(spec)
                current = sum(int(rs["spec"].get("replicas", 0)) for rs in old_rss)
                initial = max(0, min(replicas, replicas + surge - current))
            new_rs = self._new_replicaset(deploy, max_old + 1, initial)
            created = True
        elif _revision(new_rs) <= max_old:
            bumped = copy.deepcopy(new_rs)
            bumped["metadata"].setdefault("annotations", {})[REVISION] = str(max_old + 1)
            new_rs = self.store.update(REPLICASET, bumped)
        revision = str(_revision(new_rs))
        if (deploy["metadata"].get("annotations") or {}).get(REVISION) != revision:
            annotated = copy.deepcopy(deploy)
            annotated["metadata"].setdefault("annotations", {})[REVISION] = revision
            deploy = self.store.update(DEPLOYMENT, annotated)
        if strategy == "Recreate":
            new_rs, old_rss = self._recreate(deploy, new_rs, old_rss)
        else:
            new_rs, old_rss = self._rolling(deploy, new_rs, old_rss)
        self._cleanup(deploy, old_rss)
        self._sync_deployment_status(deploy, new_rs, old_rss, created)

    def _recreate(
        self, deploy: dict[str, Any], new_rs: dict[str, Any], old_rss: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        replicas = int(deploy["spec"].get("replicas", 1))
        if any(rs["spec"].get("replicas", 0) for rs in old_rss):
            old_rss = [self._scale(deploy, rs, 0) for rs in old_rss]
            return new_rs, old_rss
        ns = deploy["metadata"]["namespace"]
        if any(
            pod_active(p) or p["metadata"].get("deletionTimestamp")
            for rs in old_rss
            for p in self._owned_pods(ns, rs["metadata"]["uid"])
        ):
            return new_rs, old_rss
        return self._scale(deploy, new_rs, replicas), old_rss

    def _rolling(
        self, deploy: dict[str, Any], new_rs: dict[str, Any], old_rss: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        spec = deploy["spec"]
        replicas = int(spec.get("replicas", 1))
        surge, unavailable = resolve_fenceposts(spec)
        new_count = int(new_rs["spec"].get("replicas", 0))
        if new_count > replicas:
            new_rs = self._scale(deploy, new_rs, replicas)
        elif new_count < replicas:
            total = new_count + sum(int(rs["spec"].get("replicas", 0)) for rs in old_rss)
            allowed = replicas + surge
            if total < allowed:
                new_rs = self._scale(
                    deploy, new_rs, new_count + min(allowed - total, replicas - new_count)
                )
        old_total = sum(int(rs["spec"].get("replicas", 0)) for rs in old_rss)
        if old_total == 0:
            return new_rs, old_rss
        all_count = old_total + int(new_rs["spec"].get("replicas", 0))
        min_available = replicas - unavailable
        new_unavailable = int(new_rs["spec"].get("replicas", 0)) - int(
            (new_rs.get("status") or {}).get("availableReplicas", 0)
        )
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return new_rs, old_rss
        cleaned = 0
        result: list[dict[str, Any]] = []
        for rs in old_rss:
            count = int(rs["spec"].get("replicas", 0))
            unhealthy = count - int((rs.get("status") or {}).get("availableReplicas", 0))
            step = min(max_scaled_down - cleaned, max(unhealthy, 0))
            if step > 0 and count > 0:
                rs = self._scale(deploy, rs, count - step)
                cleaned += step
            result.append(rs)
        old_rss = result
        available = sum(
            int((rs.get("status") or {}).get("availableReplicas", 0)) for rs in [new_rs, *old_rss]
        )
        remaining = available - min_available
        result = []
        for rs in old_rss:
            count = int(rs["spec"].get("replicas", 0))
            if remaining > 0 and count > 0:
                step = min(count, remaining)
                rs = self._scale(deploy, rs, count - step)
                remaining -= step
            result.append(rs)
        return new_rs, result

    def _cleanup(self, deploy: dict[str, Any], old_rss: list[dict[str, Any]]) -> None:
        limit = deploy["spec"].get("revisionHistoryLimit", 10)
        if limit is None:
            return
        idle = [
            rs
            for rs in old_rss
            if not rs["spec"].get("replicas") and not (rs.get("status") or {}).get("replicas")
        ]
        idle.sort(key=_revision)
        for rs in idle[: max(0, len(idle) - int(limit))]:
            self.site.delete_object(
                REPLICASET, rs["metadata"]["namespace"], rs["metadata"]["name"], grace=None
            )

    def _sync_deployment_status(
        self,
        deploy: dict[str, Any],
        new_rs: dict[str, Any] | None,
        old_rss: list[dict[str, Any]],
        created: bool,
    ) -> None:
        deploy = (
            self.store.get(DEPLOYMENT, deploy["metadata"]["namespace"], deploy["metadata"]["name"])
            or deploy
        )
        spec = deploy["spec"]
        uid = deploy["metadata"]["uid"]
        replicas = int(spec.get("replicas", 1))
        all_rss = ([new_rs] if new_rs else []) + old_rss
        all_rss = [
            self.store.get(REPLICASET, rs["metadata"]["namespace"], rs["metadata"]["name"]) or rs
            for rs in all_rss
        ]
        new_rs = all_rss[0] if new_rs else None

        def total(field: str, items: list[dict[str, Any]]) -> int:
            return sum(int((rs.get("status") or {}).get(field, 0)) for rs in items)

        available = total("availableReplicas", all_rss)
        _, max_unavailable = resolve_fenceposts(spec)
        previous = deploy.get("status") or {}
        conditions = {c["type"]: dict(c) for c in previous.get("conditions") or []}
        now_text = now_rfc3339()

        def set_condition(
            kind: str, status: str, reason: str, message: str, keep_transition: bool = True
        ) -> None:
            current = conditions.get(kind)
            if (
                current
                and current["status"] == status
                and current.get("reason") == reason
                and current.get("message") == message
            ):
                return
            transition = (
                current["lastTransitionTime"]
                if current and current["status"] == status and keep_transition
                else now_text
            )
            conditions[kind] = {
                "type": kind,
                "status": status,
                "lastUpdateTime": now_text,
                "lastTransitionTime": transition,
                "reason": reason,
                "message": message,
            }

        if available >= replicas - max_unavailable:
            set_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            set_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        status: dict[str, Any] = {
            "observedGeneration": deploy["metadata"].get("generation", 1),
            "replicas": total("replicas", all_rss),
            "updatedReplicas": total("replicas", [new_rs]) if new_rs else 0,
            "readyReplicas": total("readyReplicas", all_rss),
            "availableReplicas": available,
            "unavailableReplicas": max(
                0, sum(int(rs["spec"].get("replicas", 0)) for rs in all_rss) - available
            ),
        }
        if "collisionCount" in previous:
            status["collisionCount"] = previous["collisionCount"]
        deadline = spec.get("progressDeadlineSeconds")
        rs_name = new_rs["metadata"]["name"] if new_rs else ""
        now = time.time()
        if deadline is not None and not spec.get("paused"):
            complete = (
                status["updatedReplicas"] == replicas
                and status["replicas"] == replicas
                and available == replicas
            )
            progress = conditions.get("Progressing")
            if created:
                set_condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    f'Created new replica set "{rs_name}"',
                )
                self._progress_at[uid] = now
            elif complete:
                set_condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{rs_name}" has successfully progressed.',
                )
            elif (
                progress is None
                or progress.get("reason") == "NewReplicaSetAvailable"
                or self._progressing(previous, status)
            ):
                conditions.pop("Progressing", None)
                set_condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{rs_name}" is progressing.',
                )
                if progress is not None and progress["status"] == "True":
                    conditions["Progressing"]["lastTransitionTime"] = progress["lastTransitionTime"]
                self._progress_at[uid] = now
            elif progress.get("reason") not in (
                "NewReplicaSetAvailable",
                "ProgressDeadlineExceeded",
            ):
                since = self._progress_at.get(uid)
                if since is None:
                    since = parse_rfc3339(progress.get("lastUpdateTime") or now_text)
                limit = since + float(deadline) / self.site.speed
                if now >= limit:
                    set_condition(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        f'ReplicaSet "{rs_name}" has timed out progressing.',
                    )
                else:
                    self.enqueue(
                        DEPLOYMENT,
                        deploy["metadata"]["namespace"],
                        deploy["metadata"]["name"],
                        limit - now + 0.01,
                    )
            if not complete and conditions.get("Progressing", {}).get("reason") in (
                "NewReplicaSetCreated",
                "ReplicaSetUpdated",
            ):
                since = self._progress_at.get(uid, now)
                self.enqueue(
                    DEPLOYMENT,
                    deploy["metadata"]["namespace"],
                    deploy["metadata"]["name"],
                    max(0.01, since + float(deadline) / self.site.speed - now + 0.01),
                )
        order = [k for k in ("Available", "Progressing") if k in conditions]
        status["conditions"] = [conditions[k] for k in order]
        status = _compact(status, keep=("conditions", "observedGeneration"))
        if previous != status:
            new = copy.deepcopy(deploy)
            new["status"] = status
            self.store.update(DEPLOYMENT, new)

    @staticmethod
    def _progressing(old: dict[str, Any], new: dict[str, Any]) -> bool:
        def get(status: dict[str, Any], field: str) -> int:
            return int(status.get(field, 0))

        old_old = get(old, "replicas") - get(old, "updatedReplicas")
        new_old = get(new, "replicas") - get(new, "updatedReplicas")
        return (
            get(new, "updatedReplicas") > get(old, "updatedReplicas")
            or new_old < old_old
            or get(new, "readyReplicas") > get(old, "readyReplicas")
            or get(new, "availableReplicas") > get(old, "availableReplicas")
        )

    # ---- jobs -----------------------------------------------------------------------------------
    def _sync_job(self, namespace: str, name: str) -> None:
        job = self.store.get(JOB, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        uid = job["metadata"]["uid"]
        spec = job["spec"]
        status = copy.deepcopy(job.get("status") or {})
        conditions = status.get("conditions") or []
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions):
            self._job_ttl(job, status)
            return
        if spec.get("suspend"):
            return
        counts = self._job_counts.setdefault(uid, {"succeeded": set(), "failed": set()})
        pods = self._owned_pods(namespace, uid)
        for pod in pods:
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Succeeded":
                counts["succeeded"].add(pod["metadata"]["uid"])
            elif phase == "Failed":
                counts["failed"].add(pod["metadata"]["uid"])
        active = [p for p in pods if pod_active(p)]
        succeeded, failed = len(counts["succeeded"]), len(counts["failed"])
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1))
        now = time.time()
        if "startTime" not in status:
            status["startTime"] = now_rfc3339()
            self._job_backoff_until[uid] = 0.0
            self._progress_at[uid] = now
        finished: tuple[str, str, str] | None = None
        target = int(completions) if completions is not None else 1
        if succeeded >= target and (completions is not None or not active):
            finished = (
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            )
        elif failed > int(spec.get("backoffLimit", 6)):
            finished = (
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        elif spec.get("activeDeadlineSeconds") is not None:
            started = self._progress_at.get(uid) or parse_rfc3339(status["startTime"])
            limit = started + float(spec["activeDeadlineSeconds"])
            if now >= limit:
                finished = (
                    "Failed",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                )
            else:
                self.enqueue(JOB, namespace, name, limit - now + 0.01)
        if finished is not None:
            for pod in active:
                self.site.delete_object(POD, namespace, pod["metadata"]["name"], grace=None)
            kind, reason, message = finished
            stamp = now_rfc3339()
            first = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
            status["conditions"] = conditions + [
                {
                    "type": first,
                    "status": "True",
                    "lastProbeTime": stamp,
                    "lastTransitionTime": stamp,
                    "reason": reason,
                    "message": message,
                },
                {
                    "type": kind,
                    "status": "True",
                    "lastProbeTime": stamp,
                    "lastTransitionTime": stamp,
                    "reason": reason,
                    "message": message,
                },
            ]
            if kind == "Complete":
                status["completionTime"] = stamp
                self.site.record_event(
                    JOB, job, "Normal", "Completed", "Job completed", component="job-controller"
                )
            else:
                self.site.record_event(
                    JOB, job, "Warning", reason, message, component="job-controller"
                )
            active = []
        else:
            want = (
                min(parallelism, target - succeeded)
                if completions is not None
                else (parallelism if not succeeded else 0)
            )
            missing = want - len(active)
            wait_until = self._job_backoff_until.get(uid, 0.0)
            if missing > 0 and failed and now < wait_until:
                self.enqueue(JOB, namespace, name, wait_until - now + 0.01)
            elif missing > 0:
                for _ in range(missing):
                    self._create_pod(job, "Job", "job-controller")
                if failed:
                    self._job_backoff_until[uid] = (
                        now + min(10.0 * 2 ** (failed - 1), 360.0) / self.site.speed
                    )
                active = [p for p in self._owned_pods(namespace, uid) if pod_active(p)]
        status["active"] = len(active)
        status["succeeded"] = succeeded
        status["failed"] = failed
        status["ready"] = sum(1 for p in active if pod_ready(p))
        status["terminating"] = sum(
            1 for p in self._owned_pods(namespace, uid) if p["metadata"].get("deletionTimestamp")
        )
        status["uncountedTerminatedPods"] = {}
        status = _compact(
            status, keep=("ready", "terminating", "uncountedTerminatedPods", "startTime")
        )
        if job.get("status") != status:
            new = copy.deepcopy(job)
            new["status"] = status
            job = self.store.update(JOB, new)
        self._job_ttl(job, status)

    def _job_ttl(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        finished = next(
            (
                c
                for c in status.get("conditions") or []
                if c["type"] in ("Complete", "Failed") and c["status"] == "True"
            ),
            None,
        )
        if ttl is None or finished is None:
            return
        uid = job["metadata"]["uid"]
        ended = self._progress_at.setdefault(uid + "/finished", time.time())
        due = ended + float(ttl) / self.site.speed
        if time.time() >= due:
            self.site.delete_object(
                JOB,
                job["metadata"]["namespace"],
                job["metadata"]["name"],
                grace=None,
                propagation="Background",
            )
        else:
            self.enqueue(
                JOB, job["metadata"]["namespace"], job["metadata"]["name"], due - time.time() + 0.01
            )

    def random_name(self, base: str) -> str:
        return f"{base}-{random_suffix()}"
