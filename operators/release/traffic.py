"""Move one service's traffic between the two sites during a release, and judge each step.

Every change keeps the weights summing to 100 with the other site verified healthy before a site
is drained, so at every moment a healthy site carries all the traffic the drained one gave up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from operators.release.base import drain_plan, fail, readmit_plan, shifted
from operators.release.common import ReleaseBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.catalog import Site
    from operators.verify.error_rate import ErrorRateVerdict


def _fmt(weights: Mapping[str, int]) -> str:
    return ",".join(f"{site}={weight}" for site, weight in weights.items())


class SiteHealthMixin(ReleaseBaseOperator):
    """Health checks of a site through its ingress with the service's host name."""

    def site_health(self, site: Site, retries: int | None = None) -> tuple[bool, str]:
        from dataclasses import replace

        from operators.verify.health import check_health

        service = self.ctx.service
        health = service.health if retries is None else replace(service.health, retries=retries)
        result = check_health(self.ctx.site_url(site), service.deploy.host, health)
        return result.ok, result.reason

    def require_healthy(self, site: Site, why: str) -> None:
        ok, reason = self.site_health(site)
        if not ok:
            raise fail(f"site {site.name} is not healthy ({reason}); {why}")


class SiteDrainOperator(SiteHealthMixin):
    """Take a site's traffic share down to 0 in the catalog's steps, after checking the other site.

    :param pause_seconds: wait between two drain steps (lets open requests finish); defaults to the
        catalog's ``step_seconds``, at most 30 s.
    """

    ui_color = "#fde7c8"

    def __init__(self, *, pause_seconds: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pause_seconds = pause_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        site = self.target_site()
        other = self.ctx.other_site(site.name)
        policy = self.ctx.service.release
        names = self.ctx.site_names()
        self.require_healthy(
            other, f"it would carry all traffic while {site.name} is drained; nothing was changed"
        )
        gateway = self.ctx.gateway
        before = gateway.get_weights(self.service)
        pause = (
            self.pause_seconds if self.pause_seconds is not None else min(policy.step_seconds, 30.0)
        )
        self.record(context, "drain", "running", weights=before)
        plan = drain_plan(int(before.get(site.name, 0)), policy.weight_steps)
        weights = before
        for index, share in enumerate(plan):
            weights = gateway.set_weights(self.service, shifted(site.name, share, names))
            self.log.info(
                "drain step service=%s site=%s weights=%s", self.service, site.name, _fmt(weights)
            )
            if index < len(plan) - 1:
                time.sleep(pause)
        self.record(
            context, "drain", "success", weights=weights, detail={"before": before, "plan": plan}
        )
        return {"before": before, "after": weights}


class SiteVerifyOperator(SiteHealthMixin):
    """Check a drained site after its rollout: the Deployment runs the image and the service answers its health check."""

    ui_color = "#dcedc8"

    def execute(self, context: Context) -> dict[str, Any]:
        from operators.release.status import container_image, evaluate_rollout

        site = self.target_site()
        deploy = self.ctx.service.deploy
        self.record(context, "verify", "running")
        api = self.ctx.deployments(site)
        try:
            deployment = api.get_deployment(deploy.namespace, deploy.deployment)
        finally:
            api.close()
        running = container_image(deployment, deploy.container)
        verdict = evaluate_rollout(deployment, container=deploy.container, image=self.image)
        if running != self.image or verdict.state != "done":
            self.record(
                context, "verify", "failed", detail={"image": running, "rollout": verdict.message}
            )
            raise fail(
                f"site {site.name}: deployment is not settled on {self.image}: {verdict.message}"
            )
        ok, reason = self.site_health(site)
        self.record(context, "verify", "success" if ok else "failed", detail={"health": reason})
        if not ok:
            raise fail(f"site {site.name}: health check failed after the rollout: {reason}")
        self.log.info(
            "site verified service=%s site=%s image=%s", self.service, site.name, self.image
        )
        return {"site": site.name, "health": reason}


class ErrorRateMixin(SiteHealthMixin):
    """Judge a site's error rate against the other site's over a window of gateway counts."""

    def judge(
        self, site: str, before: Mapping[str, Any], after: Mapping[str, Any]
    ) -> ErrorRateVerdict:
        from operators.verify.error_rate import judge_error_rate, window_counts

        return judge_error_rate(
            window_counts(before, after),
            site,
            max_error_rate=self.ctx.service.release.max_error_rate,
        )

    def stop_bleeding(
        self, context: Context, site: str, step: str, verdict: ErrorRateVerdict
    ) -> Exception:
        """Take the site out of traffic at once, record the failed step and return the exception to raise."""
        weights = self.ctx.gateway.set_weights(
            self.service, shifted(site, 0, self.ctx.site_names())
        )
        self.log.error(
            "error rate too high, site drained service=%s site=%s step=%s weights=%s reason=%s",
            self.service,
            site,
            step,
            _fmt(weights),
            verdict.reason,
        )
        self.record(context, step, "failed", weights=weights, detail=verdict.to_dict())
        return fail(f"site {site}: {step}: {verdict.reason}; the site was taken out of traffic")


class SiteReadmitOperator(ErrorRateMixin):
    """Give a site its traffic back in the catalog's steps, judging its error rate after each.

    Each step holds for the catalog's ``step_seconds``; when the site answered fewer than
    ``min_requests`` in that time the window is stretched (up to ``max_window_factor`` times) so the
    judgement has answers to look at. A failed step takes the site out of traffic at once.

    :param min_requests: answers of the site wanted in a step's window before judging it; the
        catalog's ``release.min_requests`` (default 20) when None.
    :param max_window_factor: how many step lengths a window may be stretched to.
    """

    ui_color = "#c8e6c9"

    def __init__(
        self, *, min_requests: int | None = None, max_window_factor: float = 4.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.min_requests = min_requests
        self.max_window_factor = max_window_factor

    def execute(self, context: Context) -> dict[str, Any]:
        from operators.verify.error_rate import window_counts

        site = self.target_site()
        policy = self.ctx.service.release
        min_requests = self.min_requests or policy.min_requests
        names = self.ctx.site_names()
        normal = self.normal(context)
        gateway = self.ctx.gateway
        steps: list[dict[str, Any]] = []
        for share in readmit_plan(normal[site.name], policy.weight_steps):
            step = f"readmit:{share}"
            target = shifted(site.name, share, names) if share != normal[site.name] else normal
            weights = gateway.set_weights(self.service, target)
            self.record(context, step, "running", weights=weights)
            before = gateway.answer_counts(self.service)
            started = time.monotonic()
            time.sleep(policy.step_seconds)
            after = gateway.answer_counts(self.service)
            limit = policy.step_seconds * self.max_window_factor
            while window_counts(before, after).get(site.name) is not None and (
                window_counts(before, after)[site.name].total < min_requests
                and time.monotonic() - started < limit
            ):
                time.sleep(min(1.0, policy.step_seconds))
                after = gateway.answer_counts(self.service)
            window = round(time.monotonic() - started, 3)
            verdict = self.judge(site.name, before, after)
            if not verdict.ok:
                raise self.stop_bleeding(context, site.name, step, verdict)
            detail = {**verdict.to_dict(), "window_seconds": window}
            self.record(context, step, "success", weights=weights, detail=detail)
            self.log.info(
                "readmit step ok service=%s site=%s weights=%s window=%.1fs %s",
                self.service,
                site.name,
                _fmt(weights),
                window,
                verdict.reason,
            )
            steps.append({"share": share, "weights": weights, **detail})
        return {"site": site.name, "steps": steps}


class ReleaseBakeOperator(ErrorRateMixin):
    """Let a site run at its normal share for the bake time, then judge its error rate over it.

    Waits deferred (no worker slot). A failed bake takes the site out of traffic at once.
    Returns ``{"baked": True, ...}``, which tells the rollback tasks that this site is done.

    :param bake_seconds: bake time; the catalog's ``bake_seconds`` when empty or None. (templated)
    """

    template_fields: Sequence[str] = (*ReleaseBaseOperator.template_fields, "bake_seconds")
    ui_color = "#b2dfdb"

    def __init__(self, *, bake_seconds: str | float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bake_seconds = bake_seconds

    def seconds(self) -> float:
        value = self.bake_seconds
        if value in (None, "", "None"):
            return float(self.ctx.service.release.bake_seconds)
        seconds = float(value)  # type: ignore[arg-type]
        if not 0 <= seconds <= 3600:
            raise fail(f"bake_seconds {seconds} is out of range 0..3600")
        return seconds

    def execute(self, context: Context) -> dict[str, Any] | None:
        from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

        site = self.target_site()
        seconds = self.seconds()
        weights = self.ctx.gateway.get_weights(self.service)
        before = self.ctx.gateway.answer_counts(self.service)
        self.record(context, "bake", "running", weights=weights, detail={"seconds": seconds})
        self.log.info("bake start service=%s site=%s seconds=%s", self.service, site.name, seconds)
        if seconds <= 0:
            return self.execute_complete(context, {"status": "success"}, before=before)
        # kept in XCom rather than the resume kwargs: it must survive the deferral however the task resumes
        context["ti"].xcom_push(key="counts_before", value=before)
        self.defer(
            trigger=TimeDeltaTrigger(timedelta(seconds=seconds)), method_name="execute_complete"
        )
        return None

    def execute_complete(
        self, context: Context, event: Any = None, before: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        site = self.target_site()
        if before is None:
            before = context["ti"].xcom_pull(task_ids=self.task_id, key="counts_before") or {}
        after = self.ctx.gateway.answer_counts(self.service)
        verdict = self.judge(site.name, before, after)
        if not verdict.ok:
            raise self.stop_bleeding(context, site.name, "bake", verdict)
        weights = self.ctx.gateway.get_weights(self.service)
        self.record(context, "bake", "success", weights=weights, detail=verdict.to_dict())
        self.log.info("bake ok service=%s site=%s %s", self.service, site.name, verdict.reason)
        return {"baked": True, "site": site.name, "weights": weights, "verdict": verdict.to_dict()}


class TrafficRestoreOperator(SiteHealthMixin):
    """Teardown: leave the service's traffic on healthy, settled sites, whatever happened before.

    A site may carry traffic when its Deployment is fully rolled out (no rollout in progress) and it
    answers its health check. Both fit: the normal weights recorded at preflight. One fits: it gets
    100%. None fits: nothing is changed and the task fails, naming both sites' state.
    """

    ui_color = "#ffe0b2"

    def execute(self, context: Context) -> dict[str, Any]:
        from operators.release.status import evaluate_rollout

        if not self.preflight(context):
            self.log.info(
                "preflight did not finish; traffic was never touched service=%s", self.service
            )
            return {"changed": False}
        deploy = self.ctx.service.deploy
        fit: dict[str, str] = {}
        unfit: dict[str, str] = {}
        for site in self.ctx.catalog.sites:
            api = self.ctx.deployments(site)
            try:
                deployment = api.get_deployment(deploy.namespace, deploy.deployment)
                verdict = evaluate_rollout(deployment, container=deploy.container)
            except Exception as err:
                unfit[site.name] = f"deployment unreadable: {err}"
                continue
            finally:
                api.close()
            if verdict.state != "done":
                unfit[site.name] = verdict.message
                continue
            ok, reason = self.site_health(site, retries=2)
            (fit if ok else unfit)[site.name] = reason
        names = self.ctx.site_names()
        current = self.ctx.gateway.get_weights(self.service)
        if not fit:
            raise fail(f"no site is fit to carry traffic; weights left at {_fmt(current)}: {unfit}")
        if len(fit) == len(names):
            target = self.normal(context)
        else:
            target = shifted(next(iter(fit)), 100, names)
        if current != target:
            current = self.ctx.gateway.set_weights(self.service, target)
            self.log.warning(
                "traffic restored service=%s weights=%s unfit=%s",
                self.service,
                _fmt(current),
                unfit,
            )
        else:
            self.log.info(
                "traffic already right service=%s weights=%s", self.service, _fmt(current)
            )
        self.record(
            context,
            "restore_traffic",
            "success",
            weights=current,
            detail={"unfit": unfit},
            strict=False,
        )
        return {"weights": current, "unfit": unfit}
