"""Before a release changes anything: checks, the release lock, the release record; and the end of it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from operators.release.base import fail, normal_weights
from operators.release.common import ReleaseBaseOperator
from operators.release.records import digest_of

if TYPE_CHECKING:
    from airflow.sdk import Context

    from operators.records.models import ReleaseState

DEFAULT_LOCK_TTL_SECONDS = 3600.0


class ReleasePreflightOperator(ReleaseBaseOperator):
    """Check that a release may start, then take the service's release lock and open its record.

    Checks, in order, all read-only: the image is pinned by digest; the digest has a green build,
    test report and quality gate in the records; no freeze window is active (or an override reason
    was given, which then needs an approval); both sites' Kubernetes APIs answer and their
    Deployments are settled; the gateway admin API answers. Only then is the lock taken (with an
    expiry) and the release recorded. Any failure changes nothing. In a dry run the task stops
    after the checks and skips the rest of the release.

    Returns ``{release_id, normal_weights, images, freeze, override_needed}``.

    :param freeze_override_reason: why a release may run inside a freeze window. (templated)
    :param checks_only: only run the checks (a dry run). (templated; "True"/"False" accepted)
    :param lock_ttl_seconds: expiry of the release lock; renewed by the release's tasks.
    """

    template_fields: Sequence[str] = (
        *ReleaseBaseOperator.template_fields,
        "freeze_override_reason",
        "checks_only",
    )
    ui_color = "#eeeeee"

    def __init__(
        self,
        *,
        freeze_override_reason: str = "",
        checks_only: bool | str = False,
        lock_ttl_seconds: float = DEFAULT_LOCK_TTL_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.freeze_override_reason = freeze_override_reason
        self.checks_only = checks_only
        self.lock_ttl_seconds = lock_ttl_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from include.params import check_image_ref

        try:
            check_image_ref(self.image)
        except ValueError as err:
            raise fail(f"preflight refused: {err}") from None
        service = self.ctx.service
        digest = digest_of(self.image)
        green = self.ctx.records.last_green(digest)
        missing = [name for name in ("build", "test", "scan") if getattr(green, name) is None]
        if missing:
            raise fail(
                f"preflight refused: image {self.image} has no passing {', '.join(missing)} record; "
                "only images whose build, tests and quality gate passed can be released"
            )
        freeze, override_needed = self.check_freeze()
        images = self.check_sites()
        try:
            weights = self.ctx.gateway.get_weights(self.service)
        except Exception as err:
            raise fail(
                f"preflight refused: the gateway admin API did not answer for {self.service}: {err}"
            ) from None
        normal = normal_weights(self.ctx.site_names(), weights)
        self.log.info(
            "preflight checks passed service=%s image=%s images=%s weights=%s",
            self.service,
            self.image,
            images,
            weights,
        )
        if str(self.checks_only).lower() in ("true", "1", "yes"):
            raise AirflowSkipException("dry run: every preflight check passed; nothing was changed")
        run_id = context["run_id"]
        records = self.ctx.records
        if not records.acquire_lock(self.service, run_id, self.lock_ttl_seconds):
            holder = records.lock_holder(self.service)
            who = (
                f"run {holder.owner_run_id} holds it until {holder.expires_at}"
                if holder
                else "another run holds it"
            )
            raise fail(
                f"preflight refused: a release of {self.service} is already running ({who}); "
                "wait for it to finish or for the lock to expire"
            )
        try:
            dag_run = context["dag_run"]
            release_id = records.start_release(
                service=self.service,
                image=self.image,
                digest=digest,
                triggered_by=str(getattr(dag_run, "triggering_user_name", None) or "airflow"),
                dag_id=context["dag"].dag_id,
                run_id=run_id,
                source="dag",
                detail={"images_before": images, "weights_before": weights, "freeze": freeze},
            )
            records.record_release_step(
                release_id,
                site="all",
                step="preflight",
                state="success",
                weights=weights,
                detail={"images": images, "freeze": freeze, "override_needed": override_needed},
            )
        except Exception:
            records.release_lock(self.service, run_id)
            raise
        self.log.info(
            "release started service=%s release_id=%s run_id=%s", self.service, release_id, run_id
        )
        return {
            "release_id": release_id,
            "service": service.name,
            "image": self.image,
            "normal_weights": normal,
            "images": images,
            "freeze": freeze,
            "override_needed": override_needed,
            "override_reason": self.freeze_override_reason or None,
        }

    def check_freeze(self) -> tuple[str | None, bool]:
        from operators.release.freeze import FreezeConfigError, active_freeze, load_freeze_windows

        try:
            windows = load_freeze_windows()
        except FreezeConfigError as err:
            raise fail(f"preflight refused: {err}") from None
        active = active_freeze(self.service, datetime.now(UTC), windows)
        if active is None:
            return None, False
        if not (self.freeze_override_reason or "").strip():
            raise fail(
                f"preflight refused: {active.describe()}; to release anyway, trigger again with "
                "freeze_override_reason and have the override approved"
            )
        self.log.warning(
            "freeze window active, override requested service=%s window=%s",
            self.service,
            active.window.name,
        )
        return active.describe(), True

    def check_sites(self) -> dict[str, str | None]:
        from operators.release.status import container_image, evaluate_rollout

        deploy = self.ctx.service.deploy
        images: dict[str, str | None] = {}
        for site in self.ctx.catalog.sites:
            try:
                api = self.ctx.deployments(site)
            except Exception as err:
                raise fail(
                    f"preflight refused: site {site.name}: cannot build a Kubernetes client: {err}"
                ) from None
            try:
                api.ping()
                deployment = api.get_deployment(deploy.namespace, deploy.deployment)
            except Exception as err:
                raise fail(f"preflight refused: {err}") from None
            finally:
                api.close()
            verdict = evaluate_rollout(deployment, container=deploy.container)
            if verdict.state != "done":
                raise fail(f"preflight refused: site {site.name} is not settled: {verdict.message}")
            images[site.name] = container_image(deployment, deploy.container)
        return images


class ReleaseCompleteOperator(ReleaseBaseOperator):
    """Both sites run the release: put the normal weights back (if not already) and record success."""

    ui_color = "#a5d6a7"

    def execute(self, context: Context) -> dict[str, Any]:
        normal = self.normal(context)
        weights = self.ctx.gateway.get_weights(self.service)
        if weights != normal:
            weights = self.ctx.gateway.set_weights(self.service, normal)
        self.record(context, "complete", "success", weights=weights, site="all")
        self.log.info(
            "release complete service=%s image=%s weights=%s", self.service, self.image, weights
        )
        return {"state": "succeeded", "weights": weights}


class ReleaseFinishOperator(ReleaseBaseOperator):
    """Teardown: close the release record with its outcome and give the release lock back.

    :param complete_task_id: the task whose success means the release succeeded.
    :param rollback_task_ids: the rollback tasks; any that rolled a site back makes the outcome ``rolled_back``.
    """

    ui_color = "#eeeeee"

    def __init__(
        self, *, complete_task_id: str, rollback_task_ids: Sequence[str], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.complete_task_id = complete_task_id
        self.rollback_task_ids = list(rollback_task_ids)

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        release_id = self.release_id(context)
        records = self.ctx.records
        outcome: ReleaseState = "failed"
        if ti.xcom_pull(task_ids=self.complete_task_id):
            outcome = "succeeded"
        elif any(ti.xcom_pull(task_ids=task_id) for task_id in self.rollback_task_ids):
            outcome = "rolled_back"
        try:
            if release_id is not None:
                records.finish_release(release_id, state=outcome)
        finally:
            released = records.release_lock(self.service, context["run_id"])
        self.log.info(
            "release finished service=%s release_id=%s outcome=%s lock_released=%s",
            self.service,
            release_id,
            outcome,
            released,
        )
        return {"outcome": outcome, "lock_released": released}
