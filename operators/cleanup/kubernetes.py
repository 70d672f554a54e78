"""Delete finished CI pods and Jobs older than a retention, and only those a selector names.

The operator lists pods and Jobs in one namespace of the CI cluster by label selector (an empty
selector is refused: it would match everything), keeps those that finished before ``now -
retention``, and deletes each with a uid precondition, so an object re-created under the same
name in the meantime survives. A Job is deleted with background propagation, which takes its
pods with it. Objects already gone count as neither deleted nor failed.

A pod has finished when its phase is ``Succeeded`` or ``Failed``; it finished when its last
container terminated (its creation time when no container ever ran). A Job has finished when
it has a ``completionTime`` or a true ``Complete``/``Failed`` condition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
DEFAULT_PAGE_SIZE = 200


def pod_finished_at(pod: Any) -> datetime | None:
    """When a finished pod stopped; None while it is pending or running."""
    status = pod.status
    if status is None or status.phase not in FINISHED_PHASES:
        return None
    containers = [*(status.init_container_statuses or []), *(status.container_statuses or [])]
    times = [
        item.state.terminated.finished_at
        for item in containers
        if item.state is not None
        and item.state.terminated is not None
        and item.state.terminated.finished_at is not None
    ]
    return max(times) if times else pod.metadata.creation_timestamp


def job_finished_at(job: Any) -> datetime | None:
    """When a finished Job ended; None while it runs."""
    status = job.status
    if status is None:
        return None
    if status.completion_time is not None:
        return status.completion_time
    for condition in status.conditions or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition.last_transition_time or job.metadata.creation_timestamp
    return None


def expired(
    items: Sequence[Any], finished_at: Callable[[Any], datetime | None], cutoff: datetime
) -> list[Any]:
    """The items that finished before ``cutoff``."""
    found = []
    for item in items:
        when = finished_at(item)
        if when is not None and _aware(when) < cutoff:
            found.append(item)
    return found


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class CiPodCleanupOperator(BaseOperator):
    """Delete finished pods and Jobs matching ``label_selector`` that ended before the retention.

    :param kubernetes_conn_id: Kubernetes connection of the CI cluster (the catalog's
        ``ci.kubernetes_conn_id``).
    :param namespace: the CI namespace. (templated)
    :param label_selector: which objects are ours, e.g. ``kubernetes_pod_operator=True``; must
        not be empty. (templated)
    :param retention_hours: how long a finished object is kept, in hours, at least 1.
        (templated)
    :param page_size: objects per list call.
    """

    template_fields: Sequence[str] = ("namespace", "label_selector", "retention_hours")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        kubernetes_conn_id: str,
        namespace: str,
        label_selector: str,
        retention_hours: float | str,
        page_size: int = DEFAULT_PAGE_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace
        self.label_selector = label_selector
        self.retention_hours = retention_hours
        self.page_size = page_size

    def execute(self, context: Context) -> dict[str, int]:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        if not self.label_selector.strip():
            raise ValueError("label_selector is empty; it would match every pod in the namespace")
        retention = timedelta(hours=float(self.retention_hours))
        if retention < timedelta(hours=1):
            raise ValueError(f"retention_hours={self.retention_hours} is below the 1 hour minimum")
        cutoff = datetime.now(UTC) - retention
        hook = KubernetesHook(conn_id=self.kubernetes_conn_id)
        batch, core = hook.batch_v1_client, hook.core_v1_client
        jobs = expired(list(self._list(batch.list_namespaced_job)), job_finished_at, cutoff)
        jobs_deleted = sum(self._delete(batch.delete_namespaced_job, "job", job) for job in jobs)
        pods = expired(list(self._list(core.list_namespaced_pod)), pod_finished_at, cutoff)
        pods_deleted = sum(self._delete(core.delete_namespaced_pod, "pod", pod) for pod in pods)
        self.log.info(
            "ci cleanup done namespace=%s selector=%s cutoff=%s pods_deleted=%s jobs_deleted=%s",
            self.namespace,
            self.label_selector,
            cutoff.isoformat(),
            pods_deleted,
            jobs_deleted,
        )
        return {"pods_deleted": pods_deleted, "jobs_deleted": jobs_deleted}

    def _list(self, call: Callable[..., Any]) -> Iterator[Any]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "label_selector": self.label_selector,
                "limit": self.page_size,
            }
            if token:
                kwargs["_continue"] = token
            page = call(self.namespace, **kwargs)
            yield from page.items or []
            token = page.metadata._continue if page.metadata is not None else None
            if not token:
                return

    def _delete(self, call: Callable[..., Any], kind: str, item: Any) -> int:
        from kubernetes.client import V1DeleteOptions, V1Preconditions
        from kubernetes.client.exceptions import ApiException

        name = item.metadata.name
        options = V1DeleteOptions(
            preconditions=V1Preconditions(uid=item.metadata.uid),
            propagation_policy="Background" if kind == "job" else None,
        )
        try:
            call(name, self.namespace, body=options)
        except ApiException as err:
            if err.status in (404, 409):
                self.log.info(
                    "ci cleanup skipped kind=%s name=%s status=%s", kind, name, err.status
                )
                return 0
            raise
        self.log.info("ci cleanup deleted kind=%s namespace=%s name=%s", kind, self.namespace, name)
        return 1
