"""Entry gateway: the driver interface the release uses, its APISIX driver, hook and operators."""

from __future__ import annotations

from typing import TYPE_CHECKING

from operators.gateway.base import (
    STATUS_CLASSES,
    CountsSnapshot,
    GatewayConfigError,
    GatewayDriver,
    GatewayError,
    SiteCounts,
)

if TYPE_CHECKING:
    from include.catalog import Catalog
    from operators.gateway.hook import GatewayHook

__all__ = [
    "STATUS_CLASSES",
    "CountsSnapshot",
    "GatewayConfigError",
    "GatewayDriver",
    "GatewayError",
    "SiteCounts",
    "gateway_driver",
]


def gateway_driver(
    catalog: Catalog, *, conn_id: str | None = None, hook: GatewayHook | None = None
) -> GatewayDriver:
    """The driver named by the catalog's ``gateway.driver``, for the catalog's sites.

    Reads the gateway connection and every site's ingress connection.

    :param catalog: the loaded service catalog.
    :param conn_id: gateway connection id; the catalog's ``gateway.conn_id`` by default.
    :param hook: a hook to use instead of a new one (e.g. with other retry settings).
    """
    from operators.gateway.ingress import site_ingress

    if catalog.gateway_driver != "apisix":
        raise GatewayConfigError(
            f"{catalog.path}: gateway driver {catalog.gateway_driver!r} is not known; use 'apisix'"
        )
    from operators.gateway.apisix import ApisixGatewayDriver
    from operators.gateway.hook import GatewayHook

    if hook is None:
        hook = GatewayHook(conn_id or catalog.gateway_conn_id)
    return ApisixGatewayDriver(hook, [site_ingress(site) for site in catalog.sites])
