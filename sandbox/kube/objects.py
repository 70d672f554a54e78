"""Validation and defaulting of incoming objects, worded like the API server's field errors."""

from __future__ import annotations

import base64
import re
from typing import Any

from sandbox.kube.meta import (
    ApiError,
    field_forbidden,
    field_invalid,
    field_required,
    invalid,
    parse_quantity,
)
from sandbox.kube.resources import (
    CONFIGMAP,
    DEPLOYMENT,
    JOB,
    NAMESPACE,
    POD,
    REPLICASET,
    SECRET,
    SERVICE,
    Resource,
)
from sandbox.kube.selectors import selector_from_match

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
QUALIFIED_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
MAX_LABEL = 63
STATUS_RESOURCES = {POD.key, DEPLOYMENT.key, REPLICASET.key, JOB.key, SERVICE.key, NAMESPACE.key}


def name_errors(field: str, name: Any, rule: str) -> list[dict[str, str]]:
    if not isinstance(name, str) or not name:
        return [field_required(field)]
    errors = []
    if rule == "subdomain":
        if len(name) > 253:
            errors.append(field_invalid(field, name, "must be no more than 253 characters"))
        if not DNS1123_SUBDOMAIN.match(name):
            errors.append(field_invalid(field, name, SUBDOMAIN_MSG))
    elif rule == "label1035":
        if len(name) > MAX_LABEL:
            errors.append(field_invalid(field, name, "must be no more than 63 characters"))
        if not DNS1035_LABEL.match(name):
            errors.append(field_invalid(field, name, DNS1035_MSG))
    else:
        if len(name) > MAX_LABEL:
            errors.append(field_invalid(field, name, "must be no more than 63 characters"))
        if not DNS1123_LABEL.match(name):
            errors.append(field_invalid(field, name, LABEL_MSG))
    return errors


def key_errors(field: str, key: str) -> list[dict[str, str]]:
    prefix, _, name = key.rpartition("/")
    errors = []
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        errors.append(field_invalid(field, key, "prefix part " + SUBDOMAIN_MSG))
    if not name:
        errors.append(field_invalid(field, key, "name part must be non-empty"))
    else:
        if len(name) > MAX_LABEL:
            errors.append(field_invalid(field, key, "name part must be no more than 63 characters"))
        if not QUALIFIED_NAME.match(name):
            errors.append(field_invalid(field, key, QUALIFIED_NAME_MSG))
    return errors


def labels_errors(field: str, labels: Any) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    if not labels:
        return errors
    if not isinstance(labels, dict):
        return [field_invalid(field, str(labels), "must be a map of strings")]
    for key, value in labels.items():
        errors.extend(key_errors(field, str(key)))
        if not isinstance(value, str):
            errors.append(field_invalid(field, str(value), "label values must be strings"))
            continue
        if len(value) > MAX_LABEL:
            errors.append(field_invalid(field, value, "must be no more than 63 characters"))
        if not LABEL_VALUE.match(value):
            errors.append(field_invalid(field, value, LABEL_VALUE_MSG))
    return errors


def _quantity_errors(field: str, resources: Any) -> list[dict[str, str]]:
    errors = []
    for section in ("limits", "requests"):
        for name, value in ((resources or {}).get(section) or {}).items():
            try:
                parse_quantity(value)
            except ValueError:
                errors.append(
                    field_invalid(
                        f"{field}.{section}[{name}]",
                        str(value),
                        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                    )
                )
    return errors


def pod_spec_errors(prefix: str, spec: Any) -> list[dict[str, str]]:
    if not isinstance(spec, dict):
        return [field_required(prefix)]
    errors: list[dict[str, str]] = []
    containers = spec.get("containers")
    if not containers:
        errors.append(field_required(f"{prefix}.containers"))
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for n, container in enumerate(spec.get(group) or []):
            path = f"{prefix}.{group}[{n}]"
            name = container.get("name")
            errors.extend(name_errors(f"{path}.name", name, "label"))
            if name in seen:
                errors.append(
                    {
                        "reason": "FieldValueDuplicate",
                        "message": f'Duplicate value: "{name}"',
                        "field": f"{path}.name",
                    }
                )
            seen.add(name)
            if not container.get("image"):
                errors.append(field_required(f"{path}.image"))
            errors.extend(_quantity_errors(f"{path}.resources", container.get("resources")))
            for m, port in enumerate(container.get("ports") or []):
                number = port.get("containerPort")
                if not isinstance(number, int) or not 0 < number < 65536:
                    errors.append(
                        field_invalid(
                            f"{path}.ports[{m}].containerPort",
                            number,
                            "must be between 1 and 65535, inclusive",
                        )
                    )
    policy = spec.get("restartPolicy", "Always")
    if policy not in ("Always", "OnFailure", "Never"):
        errors.append(
            {
                "reason": "FieldValueNotSupported",
                "message": f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"',
                "field": f"{prefix}.restartPolicy",
            }
        )
    for n, volume in enumerate(spec.get("volumes") or []):
        errors.extend(name_errors(f"{prefix}.volumes[{n}].name", volume.get("name"), "label"))
    return errors


def validate(resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    """Raise a 422 Invalid for what the real server would refuse."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    errors = name_errors("metadata.name", name, resource.name_rule)
    errors.extend(labels_errors("metadata.labels", meta.get("labels")))
    for key in meta.get("annotations") or {}:
        errors.extend(key_errors("metadata.annotations", str(key)))
    spec = obj.get("spec") or {}
    if resource.key == POD.key:
        errors.extend(pod_spec_errors("spec", obj.get("spec")))
        if old is not None:
            errors.extend(_pod_update_errors(obj, old))
    elif resource.key in (DEPLOYMENT.key, REPLICASET.key, JOB.key):
        template = spec.get("template") or {}
        errors.extend(
            labels_errors(
                "spec.template.metadata.labels", (template.get("metadata") or {}).get("labels")
            )
        )
        errors.extend(pod_spec_errors("spec.template.spec", template.get("spec")))
        selector = spec.get("selector")
        if resource.key != JOB.key or selector:
            if not selector:
                errors.append(field_required("spec.selector"))
            else:
                labels = (template.get("metadata") or {}).get("labels") or {}
                if not selector_from_match(selector)(labels):
                    errors.append(
                        field_invalid(
                            "spec.template.metadata.labels",
                            f"map[string]string{labels}",
                            "`selector` does not match template `labels`",
                        )
                    )
                if (
                    old is not None
                    and resource.key != JOB.key
                    and old.get("spec", {}).get("selector") != selector
                ):
                    errors.append(
                        field_invalid("spec.selector", str(selector), "field is immutable")
                    )
        replicas = spec.get("replicas", 1)
        if resource.key != JOB.key and (not isinstance(replicas, int) or replicas < 0):
            errors.append(
                field_invalid("spec.replicas", replicas, "must be greater than or equal to 0")
            )
        if resource.key == JOB.key:
            policy = (template.get("spec") or {}).get("restartPolicy")
            if policy not in ("OnFailure", "Never"):
                errors.append(
                    {
                        "reason": "FieldValueNotSupported" if policy else "FieldValueRequired",
                        "message": f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"'
                        if policy
                        else 'Required value: valid values: "OnFailure", "Never"',
                        "field": "spec.template.spec.restartPolicy",
                    }
                )
        if resource.key == DEPLOYMENT.key:
            deadline = spec.get("progressDeadlineSeconds")
            if deadline is not None and deadline <= spec.get("minReadySeconds", 0):
                errors.append(
                    field_invalid(
                        "spec.progressDeadlineSeconds",
                        deadline,
                        "must be greater than minReadySeconds",
                    )
                )
    elif resource.key == SERVICE.key:
        for n, port in enumerate(spec.get("ports") or []):
            number = port.get("port")
            if not isinstance(number, int) or not 0 < number < 65536:
                errors.append(
                    field_invalid(
                        f"spec.ports[{n}].port", number, "must be between 1 and 65535, inclusive"
                    )
                )
    elif resource.key in (CONFIGMAP.key, SECRET.key):
        for key in obj.get("data") or {}:
            if not re.match(r"^[-._a-zA-Z0-9]+$", key):
                errors.append(
                    field_invalid(
                        f"data[{key}]",
                        key,
                        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                    )
                )
    if errors:
        raise invalid(resource.kind, resource.group, name, errors)


def _pod_update_errors(obj: dict[str, Any], old: dict[str, Any]) -> list[dict[str, str]]:
    def mutable_view(spec: dict[str, Any]) -> dict[str, Any]:
        view = {
            k: v
            for k, v in spec.items()
            if k not in ("activeDeadlineSeconds", "tolerations", "nodeName")
        }
        view["containers"] = [
            {k: v for k, v in c.items() if k != "image"} for c in spec.get("containers") or []
        ]
        view["initContainers"] = [
            {k: v for k, v in c.items() if k != "image"} for c in spec.get("initContainers") or []
        ]
        return view

    if mutable_view(obj.get("spec") or {}) != mutable_view(old.get("spec") or {}):
        return [
            field_forbidden(
                "spec",
                "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            )
        ]
    return []


def _default_probe(probe: dict[str, Any] | None) -> None:
    if not probe:
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if "httpGet" in probe:
        probe["httpGet"].setdefault("path", "/")
        probe["httpGet"].setdefault("scheme", "HTTP")


def default_pod_spec(spec: dict[str, Any], pod: bool = True) -> None:
    """API defaults; admission defaults (service account, priority, tolerations) on pods only."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    if pod:
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
    for group in ("initContainers", "containers"):
        for container in spec.get(group) or []:
            image = str(container.get("image", ""))
            tagless = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
            latest = tagless or image.endswith(":latest")
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})
            for port in container.get("ports") or []:
                port.setdefault("protocol", "TCP")
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                _default_probe(container.get(probe))
    for volume in spec.get("volumes") or []:
        if "emptyDir" not in volume and len(volume) == 1:
            volume["emptyDir"] = {}
    if not pod:
        return
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )


def qos_class(spec: dict[str, Any]) -> str:
    containers = spec.get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("limits") or r.get("requests") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get("cpu")
        and (r.get("limits") or {}).get("memory")
        and (r.get("requests") or r.get("limits")) == r.get("limits")
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _default_template(template: dict[str, Any]) -> None:
    template.setdefault("metadata", {})
    template["metadata"].setdefault("creationTimestamp", None)
    default_pod_spec(template.setdefault("spec", {}), pod=False)


def default(resource: Resource, obj: dict[str, Any]) -> None:
    """Fill the defaults a real server fills, in place."""
    spec = obj.get("spec")
    if resource.key == POD.key:
        default_pod_spec(obj.setdefault("spec", {}))
    elif resource.key == DEPLOYMENT.key:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        _default_template(spec.setdefault("template", {}))
    elif resource.key == REPLICASET.key:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        _default_template(spec.setdefault("template", {}))
    elif resource.key == JOB.key:
        spec = obj.setdefault("spec", {})
        if "parallelism" not in spec and "completions" not in spec:
            spec["completions"] = 1
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        spec.setdefault("manualSelector", False)
        _default_template(spec.setdefault("template", {}))
    elif resource.key == SERVICE.key:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    elif resource.key == SECRET.key:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {}) if string_data else obj.get("data")
        for key, value in string_data.items():
            assert data is not None
            data[key] = base64.b64encode(str(value).encode()).decode()
    elif resource.key == NAMESPACE.key:
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        labels = obj["metadata"].setdefault("labels", {})
        labels.setdefault("kubernetes.io/metadata.name", obj["metadata"]["name"])
    del spec


def check_namespace_matches(obj: dict[str, Any], namespace: str) -> None:
    meta = obj.setdefault("metadata", {})
    given = meta.get("namespace")
    if given and given != namespace:
        raise ApiError(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        )
    meta["namespace"] = namespace
