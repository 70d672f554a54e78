"""Operators that verify one site of one service: HTTP health, and error rate at the gateway."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.configuration import conf

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.catalog import Catalog, Service, Site
    from operators.gateway.base import CountsSnapshot, GatewayDriver


def _lookup(service_name: str, site_name: str) -> tuple[Catalog, Service, Site]:
    from airflow.sdk.exceptions import AirflowFailException

    from include.catalog import load_catalog

    catalog = load_catalog()
    try:
        return catalog, catalog.service(service_name), catalog.site(site_name)
    except KeyError as err:
        raise AirflowFailException(str(err.args[0] if err.args else err)) from None


class SiteHealthCheckOperator(BaseOperator):
    """Check a service's health at one site's ingress, as the catalog's ``health`` says.

    Calls ``{ingress}{health.path}`` with ``Host: {deploy.host}``; retries ``health.retries``
    times, ``interval_seconds`` apart; fails the task when the last attempt is unhealthy. Returns
    the attempts (pushed to XCom).

    :param service: catalog name of the service. (templated)
    :param site: catalog name of the site. (templated)
    :param interval_seconds: wait between attempts.
    """

    template_fields: Sequence[str] = ("service", "site")
    ui_color = "#e2f0d9"

    def __init__(
        self, *, service: str, site: str, interval_seconds: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.site = site
        self.interval_seconds = interval_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException

        from operators.gateway.ingress import site_ingress
        from operators.verify.health import check_health

        _, service, site = _lookup(self.service, self.site)
        ingress = site_ingress(site)
        self.log.info(
            "health check start service=%s site=%s url=%s%s host=%s retries=%s",
            service.name,
            site.name,
            ingress.url,
            service.health.path,
            service.deploy.host,
            service.health.retries,
        )
        result = check_health(
            ingress.url, service.deploy.host, service.health, interval_seconds=self.interval_seconds
        )
        for attempt in result.attempts:
            level = self.log.info if attempt.ok else self.log.warning
            level(
                "health check attempt service=%s site=%s attempt=%s status=%s elapsed_s=%.3f reason=%s",
                service.name,
                site.name,
                attempt.number,
                attempt.status,
                attempt.elapsed_seconds,
                attempt.reason,
            )
        if not result.ok:
            raise AirflowException(
                f"service {service.name} is unhealthy at site {site.name} after {len(result.attempts)} attempt(s): "
                f"{result.reason} ({result.url}, Host {result.host})"
            )
        self.log.info("health check passed service=%s site=%s", service.name, site.name)
        return result.to_dict()


class ErrorRateCheckOperator(BaseOperator):
    """Compare a site's error rate at the gateway with the catalog's limit and the other site.

    Reads the gateway's answer counts, waits ``window_seconds`` (deferred to the triggerer when
    ``deferrable``), reads them again and judges the site (see
    :func:`operators.verify.error_rate.judge_error_rate`). Fails the task when the site has too
    many errors; returns the verdict (pushed to XCom).

    :param service: catalog name of the service. (templated)
    :param site: catalog name of the site to judge. (templated)
    :param window_seconds: length of the window; the service's ``release.step_seconds`` by default.
    :param factor: how many times the other site's error rate the judged site may reach.
    :param alpha: how unlikely by chance an excess must be to fail the site.
    :param fail_when_inconclusive: fail when the site answered nothing in the window.
    :param gateway_conn_id: Airflow connection of the gateway; the catalog's by default.
    :param deferrable: wait in the triggerer instead of a worker slot; from
        ``[operators] default_deferrable`` by default.
    """

    template_fields: Sequence[str] = ("service", "site")
    ui_color = "#e2f0d9"

    def __init__(
        self,
        *,
        service: str,
        site: str,
        window_seconds: float | None = None,
        factor: float = 2.0,
        alpha: float = 0.01,
        fail_when_inconclusive: bool = False,
        gateway_conn_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if window_seconds is not None and window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self.service = service
        self.site = site
        self.window_seconds = window_seconds
        self.factor = factor
        self.alpha = alpha
        self.fail_when_inconclusive = fail_when_inconclusive
        self.gateway_conn_id = gateway_conn_id
        self.deferrable = deferrable

    def execute(self, context: Context) -> dict[str, Any] | None:
        catalog, service, site = _lookup(self.service, self.site)
        window = self.window_seconds or service.release.step_seconds or 1.0
        before = self.build_driver(catalog).answer_counts(service.name)
        self.log.info(
            "error rate window start service=%s site=%s window_s=%s counts=%s",
            service.name,
            site.name,
            window,
            before,
        )
        if self.deferrable:
            from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

            self.defer(
                trigger=TimeDeltaTrigger(timedelta(seconds=window)),
                method_name="execute_complete",
                kwargs={"before": before},
            )
        time.sleep(window)
        return self.judge(context, before)

    def execute_complete(
        self, context: Context, event: Any = None, before: CountsSnapshot | None = None
    ) -> dict[str, Any]:
        return self.judge(context, before or {})

    def judge(self, context: Context, before: CountsSnapshot) -> dict[str, Any]:
        """Read the counts again and judge the site against ``before``."""
        from airflow.sdk.exceptions import AirflowException

        from operators.verify.error_rate import judge_error_rate, window_counts

        catalog, service, site = _lookup(self.service, self.site)
        after = self.build_driver(catalog).answer_counts(service.name)
        verdict = judge_error_rate(
            window_counts(before, after),
            site.name,
            max_error_rate=service.release.max_error_rate,
            factor=self.factor,
            alpha=self.alpha,
        )
        self.log.info(
            "error rate verdict service=%s site=%s ok=%s conclusive=%s errors=%s total=%s rate=%.4f threshold=%.4f",
            service.name,
            site.name,
            verdict.ok,
            verdict.conclusive,
            verdict.errors,
            verdict.total,
            verdict.rate,
            verdict.threshold,
        )
        if not verdict.ok or (self.fail_when_inconclusive and not verdict.conclusive):
            raise AirflowException(
                f"error rate check failed service={service.name}: {verdict.reason}"
            )
        return verdict.to_dict()

    def build_driver(self, catalog: Catalog) -> GatewayDriver:
        """The gateway driver of the catalog, with this operator's connection."""
        from operators.gateway import gateway_driver
        from operators.gateway.hook import GatewayHook

        return gateway_driver(
            catalog, hook=GatewayHook(self.gateway_conn_id or catalog.gateway_conn_id)
        )
