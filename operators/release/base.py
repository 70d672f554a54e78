"""What every release task shares: the catalog lookups, the records, the gateway and the sites."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from include.catalog import Catalog, Service, Site
    from operators.gateway.base import GatewayDriver
    from operators.release.kube import SiteDeployments
    from operators.release.records import ReleaseRecords


class ReleaseFailed(Exception):
    """A release judgement failed (rollout, health, error rate, approval); not worth a retry."""


def fail(message: str) -> Exception:
    """An exception that fails the task without retries, with ``message`` at the top of the log."""
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(message)


class ReleaseContext:
    """Catalog, records, gateway and cluster access for one service's release.

    Operators build one per execution; tests replace :meth:`records` or the gateway by passing
    their own objects.

    :param service: the service's catalog name.
    :param records: the records store; the platform's ``sre_records`` store when None.
    :param gateway: the gateway driver; the catalog's driver when None.
    """

    def __init__(
        self,
        service: str,
        *,
        records: ReleaseRecords | None = None,
        gateway: GatewayDriver | None = None,
    ) -> None:
        self.service_name = service
        self._records = records
        self._gateway = gateway

    @cached_property
    def catalog(self) -> Catalog:
        from include.catalog import load_catalog

        return load_catalog()

    @cached_property
    def service(self) -> Service:
        try:
            return self.catalog.service(self.service_name)
        except KeyError as err:
            raise fail(str(err.args[0])) from None

    def site(self, name: str) -> Site:
        return self.catalog.site(name)

    def other_site(self, name: str) -> Site:
        return next(site for site in self.catalog.sites if site.name != name)

    @property
    def records(self) -> ReleaseRecords:
        if self._records is None:
            from operators.release.records import release_records

            self._records = release_records()
        return self._records

    @property
    def gateway(self) -> GatewayDriver:
        if self._gateway is None:
            from operators.gateway import gateway_driver

            self._gateway = gateway_driver(self.catalog)
        return self._gateway

    def deployments(self, site: Site) -> SiteDeployments:
        from operators.release.kube import SiteDeployments

        return SiteDeployments.for_connection(site.name, site.kubernetes_conn_id)

    def site_url(self, site: Site) -> str:
        from operators.gateway.ingress import site_ingress

        return site_ingress(site).url

    def site_names(self) -> list[str]:
        return [site.name for site in self.catalog.sites]


def normal_weights(sites: list[str], recorded: Mapping[str, Any] | None) -> dict[str, int]:
    """The weights to return to: the ones recorded before the release when every site had traffic, else an even split."""
    if recorded:
        try:
            weights = {site: int(recorded[site]) for site in sites}
        except (KeyError, TypeError, ValueError):
            weights = {}
        if weights and sum(weights.values()) == 100 and all(w > 0 for w in weights.values()):
            return weights
    share, rest = divmod(100, len(sites))
    return {site: share + (1 if index < rest else 0) for index, site in enumerate(sites)}


def shifted(site: str, share: int, sites: list[str]) -> dict[str, int]:
    """Weights that give ``site`` ``share`` percent and the other site the rest (two sites)."""
    other = next(name for name in sites if name != site)
    return {name: (share if name == site else 100 - share) for name in sites} | {other: 100 - share}


def drain_plan(current: int, steps: tuple[int, ...]) -> list[int]:
    """Shares a site passes through from ``current`` down to 0: the catalog's steps in reverse, then 0."""
    return [step for step in sorted(steps, reverse=True) if step < current] + [0]


def readmit_plan(normal: int, steps: tuple[int, ...]) -> list[int]:
    """Shares a site passes through back up to its ``normal`` share."""
    return [step for step in sorted(steps) if step < normal] + [normal]
