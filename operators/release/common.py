"""The base of the release operators: templated service and image, the release's context and records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from operators.release.base import ReleaseContext, normal_weights

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.catalog import Site
    from operators.records.models import StepState


class ReleaseBaseOperator(BaseOperator):
    """Shared arguments and helpers of the release's tasks.

    :param service: catalog name of the service. (templated)
    :param image: the image being released, pinned by digest. (templated)
    :param preflight_task_id: task id of the release's preflight, whose XCom holds the release id,
        the normal weights and the images the sites ran before.
    :param site: catalog name of the site this task works on, if any.
    """

    template_fields: Sequence[str] = ("service", "image")
    ui_color = "#e8f4e4"

    def __init__(
        self,
        *,
        service: str,
        image: str,
        preflight_task_id: str,
        site: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.image = image
        self.preflight_task_id = preflight_task_id
        self.site = site
        self.release_context: ReleaseContext | None = None

    @property
    def ctx(self) -> ReleaseContext:
        if self.release_context is None:
            self.release_context = ReleaseContext(self.service)
        return self.release_context

    def target_site(self) -> Site:
        if self.site is None:
            raise ValueError(f"task {self.task_id} needs a site")
        return self.ctx.site(self.site)

    def preflight(self, context: Context) -> dict[str, Any]:
        """The preflight's XCom: release_id, normal_weights, images (empty when preflight did not run)."""
        value = context["ti"].xcom_pull(task_ids=self.preflight_task_id)
        return dict(value) if isinstance(value, Mapping) else {}

    def release_id(self, context: Context) -> int | None:
        value = self.preflight(context).get("release_id")
        return int(value) if value is not None else None

    def normal(self, context: Context) -> dict[str, int]:
        return normal_weights(self.ctx.site_names(), self.preflight(context).get("normal_weights"))

    def record(
        self,
        context: Context,
        step: str,
        state: StepState,
        *,
        weights: Mapping[str, int] | None = None,
        detail: Mapping[str, Any] | None = None,
        site: str | None = None,
        now_running: str | None = None,
        strict: bool = True,
    ) -> None:
        """Write the (site, step) row of this release; ``strict=False`` only logs a failure to write."""
        release_id = self.release_id(context)
        where = site or self.site or "all"
        if release_id is None:
            self.log.warning(
                "no release id; step not recorded step=%s site=%s state=%s", step, where, state
            )
            return
        from operators.release.records import image_ref

        try:
            self.ctx.records.record_release_step(
                release_id,
                site=where,
                step=step,
                state=state,
                weights=dict(weights) if weights is not None else None,
                detail=dict(detail) if detail is not None else None,
                now_running=image_ref(now_running) if now_running else None,
            )
        except Exception:
            if strict:
                raise
            self.log.exception(
                "recording failed release_id=%s step=%s site=%s", release_id, step, where
            )
