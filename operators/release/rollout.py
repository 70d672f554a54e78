"""Roll a site's Deployment to the release image, or back to the template it ran before.

The previous pod template is written into the Deployment's own annotations in the same patch that
changes the image, and pushed to XCom and the records: a retried task (say, after its worker was
killed) finds it there even though the Deployment already runs the new image. Waiting is deferred
to :class:`operators.release.triggers.RolloutWaitTrigger`, so no worker slot is held meanwhile and
a task resumes correctly on any worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from operators.release.base import fail, shifted
from operators.release.common import ReleaseBaseOperator
from operators.release.status import DEFAULT_RESTART_THRESHOLD, container_image
from operators.release.traffic import SiteHealthMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.catalog import Site

PREVIOUS_TEMPLATE_ANNOTATION = "release.sre.io/previous-template"
RELEASE_RUN_ANNOTATION = "release.sre.io/run-id"


def previous_template_annotations(template: Mapping[str, Any], run_id: str) -> dict[str, str]:
    """The Deployment annotations that remember the template a run replaced."""
    return {
        PREVIOUS_TEMPLATE_ANNOTATION: json.dumps(template, sort_keys=True, separators=(",", ":")),
        RELEASE_RUN_ANNOTATION: run_id,
    }


def recorded_template(deployment: Mapping[str, Any], run_id: str) -> dict[str, Any] | None:
    """The template this run recorded on the Deployment before changing it, if this run did."""
    annotations = deployment.get("metadata", {}).get("annotations") or {}
    if annotations.get(RELEASE_RUN_ANNOTATION) != run_id:
        return None
    text = annotations.get(PREVIOUS_TEMPLATE_ANNOTATION)
    if not text:
        return None
    template: dict[str, Any] = json.loads(text)
    return template


class RolloutWaitMixin(ReleaseBaseOperator):
    """Defer to the rollout trigger and judge its event."""

    restart_threshold: int = DEFAULT_RESTART_THRESHOLD
    timeout_minutes: float | None = None

    def wait_for(self, site: Site, image: str, method_name: str, kwargs: Mapping[str, Any]) -> None:
        from operators.release.triggers import RolloutWaitTrigger

        deploy = self.ctx.service.deploy
        minutes = self.timeout_minutes or self.ctx.service.release.rollout_timeout_minutes
        deadline = time.time() + minutes * 60
        self.defer(
            trigger=RolloutWaitTrigger(
                site=site.name,
                kubernetes_conn_id=site.kubernetes_conn_id,
                namespace=deploy.namespace,
                deployment=deploy.deployment,
                container=deploy.container,
                image=image,
                deadline=deadline,
                restart_threshold=self.restart_threshold,
            ),
            method_name=method_name,
            kwargs=dict(kwargs),
            timeout=timedelta(minutes=minutes, seconds=60),
        )


class DeploymentRolloutOperator(RolloutWaitMixin):
    """Patch a drained site's Deployment to the release image and wait for the rollout (deferred).

    Refuses to touch a site that still carries traffic. Pushes ``previous_template`` and
    ``previous_image`` to XCom; returns the trigger's details once the rollout is done.

    :param restart_threshold: restarts of a new pod that count as a crash loop.
    :param timeout_minutes: how long the rollout may take; the catalog's ``rollout_timeout_minutes`` by default.
    """

    ui_color = "#bbdefb"

    def __init__(
        self,
        *,
        restart_threshold: int = DEFAULT_RESTART_THRESHOLD,
        timeout_minutes: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.restart_threshold = restart_threshold
        self.timeout_minutes = timeout_minutes

    def execute(self, context: Context) -> None:
        from include.params import check_image_ref

        try:
            check_image_ref(self.image)
        except ValueError as err:
            raise fail(str(err)) from None
        site = self.target_site()
        deploy = self.ctx.service.deploy
        weights = self.ctx.gateway.get_weights(self.service)
        if weights.get(site.name, 0) != 0:
            raise fail(
                f"site {site.name} still carries {weights[site.name]}% of {self.service}'s traffic; "
                "it must be drained before its Deployment changes"
            )
        run_id = context["run_id"]
        api = self.ctx.deployments(site)
        try:
            deployment = api.get_deployment(deploy.namespace, deploy.deployment)
            current = container_image(deployment, deploy.container)
            if current is None:
                raise fail(
                    f"site {site.name}: deployment {deploy.namespace}/{deploy.deployment} has no container {deploy.container!r}"
                )
            previous = recorded_template(deployment, run_id) if current == self.image else None
            if previous is None:
                from operators.release.kube import pod_template

                previous = pod_template(deployment)
                api.set_image(
                    deploy.namespace,
                    deploy.deployment,
                    deploy.container,
                    self.image,
                    annotations=previous_template_annotations(previous, run_id),
                )
            else:
                self.log.info(
                    "deployment already patched by this run; resuming the wait site=%s", site.name
                )
        finally:
            api.close()
        previous_image = container_image({"spec": {"template": previous}}, deploy.container)
        context["ti"].xcom_push(key="previous_template", value=previous)
        context["ti"].xcom_push(key="previous_image", value=previous_image)
        self.record(
            context,
            "rollout",
            "running",
            weights=weights,
            detail={
                "image": self.image,
                "previous_image": previous_image,
                "previous_template": previous,
            },
        )
        self.log.info(
            "rollout start service=%s site=%s image=%s previous_image=%s",
            self.service,
            site.name,
            self.image,
            previous_image,
        )
        self.wait_for(site, self.image, "execute_complete", {})

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        site = self.target_site()
        status = event.get("status")
        details = dict(event.get("details") or {})
        if status != "success":
            self.record(context, "rollout", "failed", detail={"event": dict(event)}, strict=False)
            raise fail(f"rollout failed ({status}): {event.get('message')}")
        self.record(context, "rollout", "success", detail=details, now_running=self.image)
        self.log.info(
            "rollout done service=%s site=%s image=%s", self.service, site.name, self.image
        )
        return details


class DeploymentRollbackOperator(RolloutWaitMixin, SiteHealthMixin):
    """Back a site out of the release: drain it, re-apply its recorded template, wait, verify, restore its weight.

    Does nothing (skips) when the release finished, and only restores the site's weight when its
    Deployment was never changed. Never drains the site unless the other site is healthy.

    :param rollout_task_id: the site's rollout task, whose XCom holds the recorded template.
    :param finished_task_id: the task whose success means the whole release finished (the last bake).
    :param restart_threshold: restarts of a pod that count as a crash loop.
    :param timeout_minutes: how long the rollback may take; the catalog's ``rollout_timeout_minutes`` by default.
    """

    ui_color = "#ffcdd2"

    def __init__(
        self,
        *,
        rollout_task_id: str,
        finished_task_id: str,
        restart_threshold: int = DEFAULT_RESTART_THRESHOLD,
        timeout_minutes: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.rollout_task_id = rollout_task_id
        self.finished_task_id = finished_task_id
        self.restart_threshold = restart_threshold
        self.timeout_minutes = timeout_minutes

    def execute(self, context: Context) -> None:
        from airflow.sdk.exceptions import AirflowSkipException

        ti = context["ti"]
        site = self.target_site()
        if not self.preflight(context):
            raise AirflowSkipException("preflight did not pass; nothing was changed")
        finished = ti.xcom_pull(task_ids=self.finished_task_id)
        if isinstance(finished, Mapping) and finished.get("baked"):
            raise AirflowSkipException("the release finished; nothing to roll back")
        previous = ti.xcom_pull(task_ids=self.rollout_task_id, key="previous_template")
        deploy = self.ctx.service.deploy
        names = self.ctx.site_names()
        normal = self.normal(context)
        if previous is None:
            api = self.ctx.deployments(site)
            try:
                previous = recorded_template(
                    api.get_deployment(deploy.namespace, deploy.deployment), context["run_id"]
                )
            finally:
                api.close()
        if previous is None:
            weights = self.ctx.gateway.get_weights(self.service)
            if weights != normal:
                ok, reason = self.site_health(site)
                if ok:
                    weights = self.ctx.gateway.set_weights(self.service, normal)
                    self.log.info(
                        "site untouched, weight restored service=%s site=%s",
                        self.service,
                        site.name,
                    )
                else:
                    self.log.warning(
                        "site untouched but unhealthy; weights kept site=%s reason=%s",
                        site.name,
                        reason,
                    )
            self.record(
                context,
                "rollback",
                "skipped",
                weights=weights,
                detail={"reason": "deployment not changed"},
                strict=False,
            )
            raise AirflowSkipException(
                f"site {site.name}: its Deployment was not changed by this run; nothing to roll back"
            )
        other = self.ctx.other_site(site.name)
        weights = self.ctx.gateway.get_weights(self.service)
        if weights.get(site.name, 0) > 0:
            self.require_healthy(
                other,
                f"it cannot take {site.name}'s traffic, so {site.name} is not rolled back yet",
            )
            weights = self.ctx.gateway.set_weights(self.service, shifted(site.name, 0, names))
        previous_image = container_image({"spec": {"template": previous}}, deploy.container)
        self.record(
            context,
            "rollback",
            "running",
            weights=weights,
            detail={"to_image": previous_image},
            strict=False,
        )
        self.log.warning(
            "rollback start service=%s site=%s to_image=%s weights=%s",
            self.service,
            site.name,
            previous_image,
            weights,
        )
        api = self.ctx.deployments(site)
        try:
            api.apply_template(deploy.namespace, deploy.deployment, previous)
        finally:
            api.close()
        self.wait_for(
            site, str(previous_image), "execute_complete", {"previous_image": previous_image}
        )

    def execute_complete(
        self, context: Context, event: Mapping[str, Any], previous_image: str | None = None
    ) -> dict[str, Any]:
        site = self.target_site()
        status = event.get("status")
        previous_image = previous_image or (event.get("details") or {}).get("image")
        if status != "success":
            self.record(context, "rollback", "failed", detail={"event": dict(event)}, strict=False)
            raise fail(
                f"rollback of site {site.name} failed ({status}): {event.get('message')}; the site stays out of traffic"
            )
        ok, reason = self.site_health(site)
        if not ok:
            self.record(context, "rollback", "failed", detail={"health": reason}, strict=False)
            raise fail(
                f"site {site.name} rolled back to {previous_image} but is not healthy ({reason}); it stays out of traffic"
            )
        weights = self.ctx.gateway.set_weights(self.service, self.normal(context))
        self.record(
            context,
            "rollback",
            "rolled_back",
            weights=weights,
            detail={"image": previous_image, **dict(event.get("details") or {})},
            now_running=previous_image,
            strict=False,
        )
        self.log.warning(
            "rollback done service=%s site=%s image=%s weights=%s",
            self.service,
            site.name,
            previous_image,
            weights,
        )
        return {"site": site.name, "image": previous_image, "weights": weights}


__all__: Sequence[str] = (
    "DeploymentRollbackOperator",
    "DeploymentRolloutOperator",
    "previous_template_annotations",
    "recorded_template",
)
