"""Server-side printing: the `Table` answers kubectl asks for with ``as=Table``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.kube.meta import parse_rfc3339
from sandbox.kube.resources import Resource
from sandbox.kube.selectors import selector_to_string

Obj = dict[str, Any]


def human_age(stamp: str | None) -> str:
    if not stamp:
        return "<unknown>"
    seconds = int(max(0.0, time.time() - parse_rfc3339(stamp)))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    hours = minutes // 60
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    days = hours // 24
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    return f"{days}d"


def _age(obj: Obj) -> str:
    return human_age(obj["metadata"].get("creationTimestamp"))


def _pod_status(pod: Obj) -> str:
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    inits = status.get("initContainerStatuses") or []
    for n, init in enumerate(inits):
        state = init.get("state") or {}
        if "terminated" in state and state["terminated"].get("exitCode") == 0:
            continue
        if "terminated" in state:
            reason = "Init:" + (
                state["terminated"].get("reason")
                or f"ExitCode:{state['terminated'].get('exitCode')}"
            )
        elif state.get("waiting", {}).get("reason") not in (None, "PodInitializing"):
            reason = "Init:" + state["waiting"]["reason"]
        else:
            reason = f"Init:{n}/{len(inits)}"
        break
    else:
        for container in reversed(status.get("containerStatuses") or []):
            state = container.get("state") or {}
            if state.get("waiting", {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif "terminated" in state:
                terminated = state["terminated"]
                reason = terminated.get("reason") or f"ExitCode:{terminated.get('exitCode')}"
            elif "running" in state and container.get("ready"):
                reason = "Running"
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_cells(pod: Obj) -> list[Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len(pod["spec"].get("containers") or [])
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    last = [s.get("lastState", {}).get("terminated", {}).get("finishedAt") for s in statuses]
    last = [stamp for stamp in last if stamp]
    restart_text = (
        f"{restarts} ({human_age(max(last))} ago)" if restarts and last else str(restarts)
    )
    status = pod.get("status") or {}
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        _pod_status(pod),
        restart_text,
        _age(pod),
        status.get("podIP") or "<none>",
        pod["spec"].get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


def _containers(spec: Mapping[str, Any]) -> tuple[str, str]:
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return ",".join(c["name"] for c in containers), ",".join(
        str(c.get("image", "")) for c in containers
    )


def _selector(spec: Mapping[str, Any]) -> str:
    return selector_to_string(spec.get("selector")) or "<none>"


def _deploy_cells(obj: Obj) -> list[Any]:
    spec, status = obj["spec"], obj.get("status") or {}
    names, images = _containers(spec)
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(obj),
        names,
        images,
        _selector(spec),
    ]


def _rs_cells(obj: Obj) -> list[Any]:
    spec, status = obj["spec"], obj.get("status") or {}
    names, images = _containers(spec)
    return [
        obj["metadata"]["name"],
        spec.get("replicas", 1),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(obj),
        names,
        images,
        _selector(spec),
    ]


def _job_cells(obj: Obj) -> list[Any]:
    spec, status = obj["spec"], obj.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
    state = (
        "Complete"
        if "Complete" in conditions
        else "Failed"
        if "Failed" in conditions
        else "Running"
    )
    duration = ""
    if status.get("startTime"):
        end = (
            parse_rfc3339(status["completionTime"]) if status.get("completionTime") else time.time()
        )
        duration = f"{int(end - parse_rfc3339(status['startTime']))}s"
    names, images = _containers(spec)
    return [
        obj["metadata"]["name"],
        state,
        f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}",
        duration,
        _age(obj),
        names,
        images,
        _selector(spec),
    ]


def _svc_cells(obj: Obj) -> list[Any]:
    spec = obj["spec"]
    ports = (
        ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
        or "<none>"
    )
    selector = (
        ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"
    )
    return [
        obj["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", "<none>"),
        "<none>",
        ports,
        _age(obj),
        selector,
    ]


def _event_cells(obj: Obj) -> list[Any]:
    involved = obj.get("involvedObject") or {}
    return [
        human_age(obj.get("lastTimestamp") or obj["metadata"].get("creationTimestamp")),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        obj.get("message", ""),
    ]


STR = "string"
INT = "integer"
COLUMNS: dict[str, tuple[list[tuple[str, str, int]], Callable[[Obj], list[Any]]]] = {
    "pods": (
        [
            ("Name", STR, 0),
            ("Ready", STR, 0),
            ("Status", STR, 0),
            ("Restarts", STR, 0),
            ("Age", STR, 0),
            ("IP", STR, 1),
            ("Node", STR, 1),
            ("Nominated Node", STR, 1),
            ("Readiness Gates", STR, 1),
        ],
        _pod_cells,
    ),
    "deployments.apps": (
        [
            ("Name", STR, 0),
            ("Ready", STR, 0),
            ("Up-to-date", INT, 0),
            ("Available", INT, 0),
            ("Age", STR, 0),
            ("Containers", STR, 1),
            ("Images", STR, 1),
            ("Selector", STR, 1),
        ],
        _deploy_cells,
    ),
    "replicasets.apps": (
        [
            ("Name", STR, 0),
            ("Desired", INT, 0),
            ("Current", INT, 0),
            ("Ready", INT, 0),
            ("Age", STR, 0),
            ("Containers", STR, 1),
            ("Images", STR, 1),
            ("Selector", STR, 1),
        ],
        _rs_cells,
    ),
    "jobs.batch": (
        [
            ("Name", STR, 0),
            ("Status", STR, 0),
            ("Completions", STR, 0),
            ("Duration", STR, 0),
            ("Age", STR, 0),
            ("Containers", STR, 1),
            ("Images", STR, 1),
            ("Selector", STR, 1),
        ],
        _job_cells,
    ),
    "services": (
        [
            ("Name", STR, 0),
            ("Type", STR, 0),
            ("Cluster-IP", STR, 0),
            ("External-IP", STR, 0),
            ("Port(s)", STR, 0),
            ("Age", STR, 0),
            ("Selector", STR, 1),
        ],
        _svc_cells,
    ),
    "events": (
        [
            ("Last Seen", STR, 0),
            ("Type", STR, 0),
            ("Reason", STR, 0),
            ("Object", STR, 0),
            ("Message", STR, 0),
        ],
        _event_cells,
    ),
    "namespaces": (
        [("Name", STR, 0), ("Status", STR, 0), ("Age", STR, 0)],
        lambda o: [o["metadata"]["name"], (o.get("status") or {}).get("phase", ""), _age(o)],
    ),
    "nodes": (
        [
            ("Name", STR, 0),
            ("Status", STR, 0),
            ("Roles", STR, 0),
            ("Age", STR, 0),
            ("Version", STR, 0),
        ],
        lambda o: [o["metadata"]["name"], "Ready", "control-plane", _age(o), "v1.32.4"],
    ),
    "configmaps": (
        [("Name", STR, 0), ("Data", INT, 0), ("Age", STR, 0)],
        lambda o: [
            o["metadata"]["name"],
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            _age(o),
        ],
    ),
    "secrets": (
        [("Name", STR, 0), ("Type", STR, 0), ("Data", INT, 0), ("Age", STR, 0)],
        lambda o: [
            o["metadata"]["name"],
            o.get("type", "Opaque"),
            len(o.get("data") or {}),
            _age(o),
        ],
    ),
    "serviceaccounts": (
        [("Name", STR, 0), ("Secrets", INT, 0), ("Age", STR, 0)],
        lambda o: [o["metadata"]["name"], len(o.get("secrets") or []), _age(o)],
    ),
}


def render_table(
    resource: Resource, items: list[Obj], rv: str, query: Mapping[str, str]
) -> dict[str, Any]:
    columns, cells = COLUMNS.get(
        resource.key,
        ([("Name", STR, 0), ("Age", STR, 0)], lambda o: [o["metadata"]["name"], _age(o)]),
    )
    include = query.get("includeObject", "Metadata")
    rows = []
    for obj in items:
        if include == "Object":
            embedded: Obj = obj
        elif include == "None":
            embedded = {}
        else:
            embedded = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        row: dict[str, Any] = {"cells": cells(obj)}
        if embedded:
            row["object"] = embedded
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": [
            {
                "name": name,
                "type": kind,
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": priority,
            }
            for name, kind, priority in columns
        ],
        "rows": rows,
    }
