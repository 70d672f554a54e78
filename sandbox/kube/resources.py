"""The resource types the stand-in serves, as discovery lists them."""

from __future__ import annotations

from dataclasses import dataclass, field

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
READ_ONLY_VERBS = ["get", "list", "watch"]


@dataclass(frozen=True)
class Resource:
    """One REST resource: where it lives in the API and how it is named."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    name_rule: str = "subdomain"
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = tuple(VERBS)
    has_status: bool = False
    field_selectors: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


POD_FIELDS = (
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
)
EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

RESOURCES: tuple[Resource, ...] = (
    Resource(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        ("ns",),
        ("status", "finalize"),
        "label",
        has_status=True,
        field_selectors=("status.phase",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    Resource(
        "",
        "v1",
        "nodes",
        "Node",
        False,
        ("no",),
        ("status",),
        has_status=True,
        field_selectors=("spec.unschedulable",),
        verbs=tuple(READ_ONLY_VERBS),
    ),
    Resource(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        ("po",),
        ("log", "status"),
        categories=("all",),
        has_status=True,
        field_selectors=POD_FIELDS,
    ),
    Resource("", "v1", "events", "Event", True, ("ev",), field_selectors=EVENT_FIELDS),
    Resource(
        "",
        "v1",
        "services",
        "Service",
        True,
        ("svc",),
        ("status",),
        "label1035",
        categories=("all",),
        has_status=True,
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "secrets", "Secret", True, field_selectors=("type",)),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    Resource(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        ("deploy",),
        ("status", "scale"),
        categories=("all",),
        has_status=True,
    ),
    Resource(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        ("rs",),
        ("status", "scale"),
        categories=("all",),
        has_status=True,
        field_selectors=("status.replicas",),
    ),
    Resource(
        "batch",
        "v1",
        "jobs",
        "Job",
        True,
        (),
        ("status",),
        categories=("all",),
        has_status=True,
        field_selectors=("status.successful",),
    ),
)

BY_KEY = {r.key: r for r in RESOURCES}
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}
GROUPS: dict[str, list[str]] = {}
for _r in RESOURCES:
    if _r.group and _r.version not in GROUPS.setdefault(_r.group, []):
        GROUPS[_r.group].append(_r.version)

POD = BY_KEY["pods"]
EVENT = BY_KEY["events"]
NAMESPACE = BY_KEY["namespaces"]
NODE = BY_KEY["nodes"]
SERVICE = BY_KEY["services"]
CONFIGMAP = BY_KEY["configmaps"]
SECRET = BY_KEY["secrets"]
SERVICEACCOUNT = BY_KEY["serviceaccounts"]
DEPLOYMENT = BY_KEY["deployments.apps"]
REPLICASET = BY_KEY["replicasets.apps"]
JOB = BY_KEY["jobs.batch"]


def discovery_entries(group: str, version: str) -> list[dict[str, object]]:
    """The `resources` list of an APIResourceList for one group/version."""
    entries: list[dict[str, object]] = []
    for res in RESOURCES:
        if res.group != group or res.version != version:
            continue
        entry: dict[str, object] = {
            "name": res.plural,
            "singularName": res.singular,
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": list(res.verbs),
        }
        if res.short_names:
            entry["shortNames"] = list(res.short_names)
        if res.categories:
            entry["categories"] = list(res.categories)
        entries.append(entry)
        for sub in res.subresources:
            sub_entry: dict[str, object] = {
                "name": f"{res.plural}/{sub}",
                "singularName": "",
                "namespaced": res.namespaced,
                "kind": res.kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "log":
                sub_entry["verbs"] = ["get"]
            if sub == "finalize":
                sub_entry["verbs"] = ["update"]
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1", kind="Scale")
            entries.append(sub_entry)
    return entries
