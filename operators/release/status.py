"""Judge a Deployment rollout from the objects the Kubernetes API returns.

Pure functions over the API's JSON (camelCase dicts), shared by the operator, the trigger and the
restore-traffic teardown, so every one of them calls a rollout done or failed for the same reasons.
The rules follow the Deployment controller's own status fields, as ``kubectl rollout status`` reads
them, plus a look at the new pods so a crash-looping version fails before the progress deadline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DONE = "done"
FAILED = "failed"
PROGRESSING = "progressing"

DEFAULT_RESTART_THRESHOLD = 3
# Waiting reasons that say the new version cannot start, whatever the progress deadline says.
FATAL_WAITING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
    }
)


@dataclass(frozen=True)
class RolloutVerdict:
    """Where a rollout stands: ``state`` is done, failed or progressing; ``message`` says why."""

    state: str
    message: str
    details: Mapping[str, Any]

    @property
    def finished(self) -> bool:
        return self.state != PROGRESSING


def container_image(deployment: Mapping[str, Any], container: str) -> str | None:
    """The image of ``container`` in the Deployment's pod template, or None if there is no such container."""
    for item in _template_containers(deployment.get("spec", {}).get("template", {})):
        if item.get("name") == container:
            image = item.get("image")
            return str(image) if image is not None else None
    return None


def _template_containers(template: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    containers = template.get("spec", {}).get("containers") or []
    return [c for c in containers if isinstance(c, Mapping)]


def replica_counts(deployment: Mapping[str, Any]) -> dict[str, int]:
    """Desired, current, updated, ready and available replicas, and the generations, as ints."""
    spec = deployment.get("spec", {})
    status = deployment.get("status") or {}
    desired = spec.get("replicas")
    return {
        "desired": 1 if desired is None else int(desired),
        "replicas": int(status.get("replicas") or 0),
        "updated": int(status.get("updatedReplicas") or 0),
        "ready": int(status.get("readyReplicas") or 0),
        "available": int(status.get("availableReplicas") or 0),
        "unavailable": int(status.get("unavailableReplicas") or 0),
        "generation": int(deployment.get("metadata", {}).get("generation") or 0),
        "observed_generation": int(status.get("observedGeneration") or 0),
    }


def _condition(deployment: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def pod_problem(
    pod: Mapping[str, Any], container: str, restart_threshold: int = DEFAULT_RESTART_THRESHOLD
) -> str | None:
    """Why ``container`` of ``pod`` will not come up (crash loop, image pull, restarts), or None."""
    name = pod.get("metadata", {}).get("name", "?")
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != container:
            continue
        waiting = (status.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FATAL_WAITING_REASONS:
            detail = waiting.get("message") or ""
            return f"pod {name}: container {container} is in {reason}" + (
                f" ({detail})" if detail else ""
            )
        restarts = int(status.get("restartCount") or 0)
        if restarts >= restart_threshold:
            return f"pod {name}: container {container} restarted {restarts} times (threshold {restart_threshold})"
    return None


def pod_runs_image(pod: Mapping[str, Any], container: str, image: str) -> bool:
    """True when the pod's spec runs ``image`` in ``container`` (a pod of the version being rolled out)."""
    for item in pod.get("spec", {}).get("containers") or []:
        if item.get("name") == container:
            return bool(item.get("image") == image)
    return False


def evaluate_rollout(
    deployment: Mapping[str, Any] | None,
    pods: Iterable[Mapping[str, Any]] = (),
    *,
    container: str,
    image: str | None = None,
    restart_threshold: int = DEFAULT_RESTART_THRESHOLD,
) -> RolloutVerdict:
    """Say whether the Deployment's rollout is done, failed or still progressing.

    :param deployment: the Deployment as the API returns it (None when it does not exist).
    :param pods: the pods selected by the Deployment; those running ``image`` are checked for crash loops.
    :param container: the container whose image is released.
    :param image: the image being rolled out; when the template holds another image the rollout
        has been superseded and counts as failed.
    :param restart_threshold: restarts of a new pod's container that count as a crash loop.
    """
    if deployment is None:
        return RolloutVerdict(
            FAILED, "the Deployment does not exist (deleted during the rollout?)", {}
        )
    counts = replica_counts(deployment)
    name = deployment.get("metadata", {}).get("name", "?")
    current = container_image(deployment, container)
    details: dict[str, Any] = {"deployment": name, "image": current, **counts}
    if image is not None and current != image:
        return RolloutVerdict(
            FAILED,
            f"deployment {name}: its template now runs {current}, not {image}; another change superseded this rollout",
            details,
        )
    if image is not None:
        for pod in pods:
            if pod.get("metadata", {}).get("deletionTimestamp"):
                continue
            if not pod_runs_image(pod, container, image):
                continue
            problem = pod_problem(pod, container, restart_threshold)
            if problem:
                return RolloutVerdict(
                    FAILED, f"deployment {name}: new version is not starting: {problem}", details
                )
    if counts["observed_generation"] < counts["generation"]:
        return RolloutVerdict(
            PROGRESSING,
            f"deployment {name}: waiting for the controller to observe generation {counts['generation']}",
            details,
        )
    progressing = _condition(deployment, "Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return RolloutVerdict(
            FAILED,
            f"deployment {name}: ProgressDeadlineExceeded: {progressing.get('message') or 'no progress within the deadline'}",
            details,
        )
    desired = counts["desired"]
    if counts["updated"] < desired:
        return RolloutVerdict(
            PROGRESSING,
            f"deployment {name}: {counts['updated']} of {desired} replicas updated",
            details,
        )
    if counts["replicas"] > counts["updated"]:
        return RolloutVerdict(
            PROGRESSING,
            f"deployment {name}: {counts['replicas'] - counts['updated']} old replicas pending termination",
            details,
        )
    if counts["available"] < desired or counts["ready"] < desired:
        return RolloutVerdict(
            PROGRESSING,
            f"deployment {name}: {counts['available']} of {desired} updated replicas available",
            details,
        )
    return RolloutVerdict(
        DONE, f"deployment {name}: rolled out, {desired} replicas of {current} available", details
    )
