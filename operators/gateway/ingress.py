"""Where each site's HTTP entry (ingress or load balancer) answers, from its Airflow connection.

Connection contract (one per site, id from the catalog's ``ingress_conn_id``): conn type ``http``;
``host`` (a name or an IP address; a ``scheme://`` prefix is accepted), ``port`` (default 80, or 443
for https) and ``schema`` (``http`` or ``https``, default ``http``). The gateway uses ``host:port``
as the site's upstream node, and health checks call ``scheme://host:port`` with the service's host
name in the Host header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from operators.gateway.base import GatewayConfigError

if TYPE_CHECKING:
    from include.catalog import Site

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class SiteIngress:
    """The HTTP entry of one site."""

    site: str
    host: str
    port: int
    scheme: str = "http"

    @property
    def address(self) -> str:
        """``host:port`` as the gateway names an upstream node."""
        return f"{self._url_host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self._url_host}:{self.port}"

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def ingress_from_fields(
    site: str, conn_id: str, host: str | None, port: int | None, schema: str | None
) -> SiteIngress:
    """Build a :class:`SiteIngress` from connection fields, or say which field is wrong."""
    raw_host = (host or "").strip()
    scheme = (schema or "").strip().lower()
    if "://" in raw_host:
        parts = urlsplit(raw_host)
        scheme = scheme or parts.scheme.lower()
        port = port or parts.port
        raw_host = parts.hostname or ""
    scheme = scheme or "http"
    if scheme not in _DEFAULT_PORTS:
        raise GatewayConfigError(
            f"connection {conn_id} of site {site}: schema {scheme!r} is not http or https; fix the connection's schema field",
            site=site,
        )
    if not raw_host:
        raise GatewayConfigError(
            f"connection {conn_id} of site {site}: host is empty; set it to the site's ingress address",
            site=site,
        )
    resolved_port = int(port) if port else _DEFAULT_PORTS[scheme]
    if not 0 < resolved_port < 65536:
        raise GatewayConfigError(
            f"connection {conn_id} of site {site}: port {resolved_port} is out of range", site=site
        )
    return SiteIngress(site=site, host=raw_host, port=resolved_port, scheme=scheme)


def site_ingress(site: Site) -> SiteIngress:
    """Look up the ingress connection of ``site`` (the catalog's ``ingress_conn_id``)."""
    from airflow.sdk.bases.hook import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(site.ingress_conn_id)
    except AirflowNotFoundException:
        raise GatewayConfigError(
            f"site {site.name}: Airflow connection {site.ingress_conn_id!r} (the site's ingress) is not defined; "
            "create it with conn type http, host and port of the site's entry",
            site=site.name,
        ) from None
    return ingress_from_fields(site.name, site.ingress_conn_id, conn.host, conn.port, conn.schema)
