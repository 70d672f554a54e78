"""Set the per-site traffic weights of one service at the entry gateway."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.catalog import Catalog
    from operators.gateway.base import GatewayDriver


class WeightsError(ValueError):
    """Weights that a traffic shift refuses to apply."""


def format_weights(weights: Mapping[str, int]) -> str:
    """``{"site-a": 75, "site-b": 25}`` -> ``site-a=75,site-b=25`` for logs."""
    return ",".join(f"{site}={weight}" for site, weight in weights.items())


def parse_weights(value: Mapping[str, Any] | str) -> dict[str, int]:
    """Weights from a mapping or its JSON text (as a rendered template gives it)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise WeightsError(
                f"weights {value!r} are not JSON; give a mapping such as {{'site-a': 50, 'site-b': 50}}"
            ) from None
    if not isinstance(value, Mapping):
        raise WeightsError(
            f"weights must be a mapping of site to weight, got {type(value).__name__}"
        )
    parsed: dict[str, int] = {}
    for site, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise WeightsError(
                f"weight of site {site} is {weight!r}; use a whole number from 0 to 100"
            )
        parsed[str(site)] = weight
    return parsed


def check_weights(weights: Mapping[str, int], sites: Sequence[str] | None = None) -> dict[str, int]:
    """Refuse weights that are out of 0..100, do not sum to 100 or do not name exactly ``sites``.

    Summing to 100 also means at least one site keeps traffic: no shift leaves every site at 0.
    Returns the weights in ``sites`` order when given.
    """
    if sites is not None:
        unknown = sorted(set(weights) - set(sites))
        missing = sorted(set(sites) - set(weights))
        if unknown or missing:
            raise WeightsError(
                f"weights {format_weights(weights)} must name every site exactly once ({', '.join(sites)}); "
                f"unknown={unknown} missing={missing}"
            )
        weights = {site: weights[site] for site in sites}
    for site, weight in weights.items():
        if not 0 <= weight <= 100:
            raise WeightsError(f"weight of site {site} is {weight}; it must be from 0 to 100")
    total = sum(weights.values())
    if total != 100:
        raise WeightsError(
            f"weights {format_weights(weights)} sum to {total}; they must sum to 100"
        )
    return dict(weights)


class TrafficShiftOperator(BaseOperator):
    """Set the weight of every site for one service at the entry gateway, in one admin call.

    Logs the weights before and after; returns ``{"service", "before", "after"}`` (pushed to XCom).
    Nothing is written when the gateway already holds the requested weights.

    :param service: catalog name of the service. (templated)
    :param weights: weight per site, every catalog site named, summing to 100; a mapping or its
        JSON text. (templated)
    :param gateway_conn_id: Airflow connection of the gateway admin API; the catalog's
        ``gateway.conn_id`` by default.
    :param retry_budget_seconds: how long one gateway call may keep retrying before failing.
    """

    template_fields: Sequence[str] = ("service", "weights")
    ui_color = "#d8e7f5"

    def __init__(
        self,
        *,
        service: str,
        weights: Mapping[str, int] | str,
        gateway_conn_id: str | None = None,
        retry_budget_seconds: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(weights, Mapping):
            check_weights(parse_weights(weights))
        self.service = service
        self.weights = weights
        self.gateway_conn_id = gateway_conn_id
        self.retry_budget_seconds = retry_budget_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from include.catalog import load_catalog

        catalog = load_catalog()
        try:
            catalog.service(self.service)
            weights = check_weights(parse_weights(self.weights), [s.name for s in catalog.sites])
        except (KeyError, WeightsError) as err:
            raise AirflowFailException(
                f"traffic shift refused service={self.service}: {err}"
            ) from None
        driver = self.build_driver(catalog)
        before = driver.get_weights(self.service)
        self.log.info(
            "traffic shift start service=%s before=%s target=%s",
            self.service,
            format_weights(before),
            format_weights(weights),
        )
        if before == weights:
            self.log.info(
                "traffic shift not needed service=%s weights=%s",
                self.service,
                format_weights(before),
            )
            return {"service": self.service, "before": before, "after": before}
        after = driver.set_weights(self.service, weights)
        self.log.info(
            "traffic shift done service=%s before=%s after=%s",
            self.service,
            format_weights(before),
            format_weights(after),
        )
        return {"service": self.service, "before": before, "after": after}

    def build_driver(self, catalog: Catalog) -> GatewayDriver:
        """The gateway driver of the catalog, with this operator's connection and retry budget."""
        from operators.gateway import gateway_driver
        from operators.gateway.hook import GatewayHook

        hook = GatewayHook(
            self.gateway_conn_id or catalog.gateway_conn_id,
            retry_budget_seconds=self.retry_budget_seconds,
        )
        return gateway_driver(catalog, hook=hook)
