"""What the release operators need from the entry gateway, independent of the gateway product.

A driver answers three questions for one service: how much traffic each site gets (its weight),
how to change all sites' weights in one step, and how many answers each site gave by status class
(for comparing error rates). Weights are integers; the release treats them as percentages of the
service's traffic and keeps their sum at 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from include.catalog import Service

STATUS_CLASSES: tuple[str, ...] = ("1xx", "2xx", "3xx", "4xx", "5xx")

SiteCounts = dict[str, int]
"""Answers of one site by status class: ``{"2xx": 120, "5xx": 3, ...}``; every class present."""

CountsSnapshot = dict[str, SiteCounts]
"""Cumulative answer counts of one service, per site name, read at one moment."""


class GatewayError(RuntimeError):
    """A gateway call failed; the message names the service, the site and the admin URL path.

    :param message: what went wrong and what to do about it.
    :param service: the service the call was about, if any.
    :param site: the site the call was about, if any.
    :param path: the admin (or metrics) URL path that was called, if any.
    :param status: the HTTP status of the last answer, if there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str | None = None,
        site: str | None = None,
        path: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.service = service
        self.site = site
        self.path = path
        self.status = status


class GatewayConfigError(GatewayError):
    """The gateway's configuration (connection, upstream, route) does not fit the catalog."""


def status_class(code: int | str) -> str | None:
    """``503`` -> ``"5xx"``; ``None`` for anything that is not an HTTP status code."""
    try:
        number = int(code)
    except (TypeError, ValueError):
        return None
    if 100 <= number <= 599:
        return f"{number // 100}xx"
    return None


def empty_counts() -> SiteCounts:
    return dict.fromkeys(STATUS_CLASSES, 0)


@runtime_checkable
class GatewayDriver(Protocol):
    """The gateway operations a release depends on, for the sites the driver was built with."""

    @property
    def sites(self) -> Sequence[str]:
        """Names of the sites this driver routes to, in catalog order."""
        ...

    def get_weights(self, service: str) -> dict[str, int]:
        """Current weight of every site for ``service``."""
        ...

    def set_weights(self, service: str, weights: Mapping[str, int]) -> dict[str, int]:
        """Set the weights of all sites for ``service`` in one admin call; return what the gateway now holds."""
        ...

    def answer_counts(self, service: str) -> CountsSnapshot:
        """Cumulative answers per site and status class for ``service`` since the gateway started."""
        ...

    def ensure_service(
        self,
        service: Service,
        initial_weights: Mapping[str, int] | None = None,
        *,
        public_host: str | None = None,
    ) -> bool:
        """Create or update the service's upstream and route for the driver's sites, idempotently.

        A new service gets ``initial_weights`` (an even split by default); an existing one keeps
        its weights. Returns True when something was written.
        """
        ...
