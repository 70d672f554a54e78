"""Gateway driver for Apache APISIX (Admin API v3).

Model: one upstream per service (upstream id = service name) with one node per site, the node
being ``host:port`` of the site's ingress; ``pass_host: rewrite`` with ``upstream_host`` = the
service's ``deploy.host`` so each site's ingress sees the service's host name; one route per
service (route id = service name) matching the service's public host and sending to that upstream.

Weights are written with one ``PATCH /apisix/admin/upstreams/{id}`` whose ``nodes`` carries every
site. APISIX replaces a list-valued field as a whole and merges an object-valued one key by key,
so the body keeps the form the upstream already stores (the driver itself always writes the list
form ``[{"host", "port", "weight", "priority"}]``).

Answer counts come from the ``apisix_http_status`` counter of the Prometheus plugin
(``code, route, matched_uri, matched_host, service, consumer, node``). Its ``node`` label is the
node's IP without the port, which cannot tell two sites apart that share an IP; when the plugin is
configured with an ``upstream_addr`` extra label (``plugin_attr.prometheus.metrics.http_status.
extra_labels: [{upstream_addr: $upstream_addr}]``) the driver matches on ``host:port`` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from operators.gateway.base import (
    CountsSnapshot,
    GatewayConfigError,
    GatewayError,
    empty_counts,
    status_class,
)
from operators.gateway.prometheus import parse_exposition

if TYPE_CHECKING:
    from include.catalog import Service
    from operators.gateway.hook import GatewayHook
    from operators.gateway.ingress import SiteIngress

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/apisix/admin"
STATUS_METRIC = "apisix_http_status"
ROUTE_URI = "/*"
_SERVER_FIELDS = ("id", "create_time", "update_time")


def split_even(sites: Sequence[str]) -> dict[str, int]:
    """Weights summing to 100 spread as evenly as possible, the remainder to the first sites."""
    base, extra = divmod(100, len(sites))
    return {name: base + (1 if index < extra else 0) for index, name in enumerate(sites)}


def node_weights(nodes: Any) -> dict[str, int]:
    """``{"host:port": weight}`` from an upstream's ``nodes`` in either APISIX form (object or list)."""
    if isinstance(nodes, dict):
        return {str(addr): int(weight) for addr, weight in nodes.items() if weight is not None}
    result: dict[str, int] = {}
    for node in nodes or []:
        host = str(node["host"])
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        result[f"{host}:{int(node.get('port', 80))}"] = int(node.get("weight", 0))
    return result


def _node_list(
    weights: Mapping[str, int], ingresses: Mapping[str, SiteIngress]
) -> list[dict[str, Any]]:
    return [
        {
            "host": ingresses[site].host,
            "port": ingresses[site].port,
            "weight": weight,
            "priority": 0,
        }
        for site, weight in weights.items()
    ]


def _format(weights: Mapping[str, int]) -> str:
    return ",".join(f"{site}={weight}" for site, weight in weights.items())


class ApisixGatewayDriver:
    """Read and set per-site weights of a service at APISIX, and read per-site answer counts.

    :param hook: the gateway hook (admin API connection, retries, metrics endpoint).
    :param sites: the ingress of every site, in catalog order.
    """

    def __init__(self, hook: GatewayHook, sites: Sequence[SiteIngress]) -> None:
        if not sites:
            raise GatewayConfigError("the gateway driver needs at least one site")
        names = [s.site for s in sites]
        addresses = [s.address for s in sites]
        if len(set(names)) != len(names):
            raise GatewayConfigError(f"site names repeat: {names}")
        if len(set(addresses)) != len(addresses):
            raise GatewayConfigError(
                f"two sites share an ingress address ({dict(zip(names, addresses, strict=True))}); "
                "each site needs its own host:port to be its own upstream node"
            )
        self.hook = hook
        self._ingress = {s.site: s for s in sites}
        self._by_address = {s.address: s.site for s in sites}

    @property
    def sites(self) -> list[str]:
        return list(self._ingress)

    def get_weights(self, service: str) -> dict[str, int]:
        upstream = self._require_upstream(service)
        return self._site_weights(service, upstream)

    def set_weights(self, service: str, weights: Mapping[str, int]) -> dict[str, int]:
        desired = self._checked(service, weights)
        upstream = self._require_upstream(service)
        before = self._site_weights(service, upstream, strict=False)
        changed = [site for site in desired if before.get(site) != desired[site]] or self.sites
        nodes: Any = _node_list(desired, self._ingress)
        if isinstance(upstream.get("nodes"), dict):
            nodes = {self._ingress[site].address: weight for site, weight in desired.items()}
        path = self._upstream_path(service)
        answer = self.hook.admin(
            "PATCH", path, {"nodes": nodes}, service=service, site=",".join(changed)
        )
        after = self._site_weights(service, _value(answer.body, service, path))
        if after != desired:
            raise GatewayError(
                f"gateway admin PATCH {path} (service={service}): the gateway holds {_format(after)} "
                f"after setting {_format(desired)}",
                service=service,
                path=path,
            )
        log.info("gateway weights set service=%s weights=%s", service, _format(after))
        return after

    def answer_counts(self, service: str) -> CountsSnapshot:
        text = self.hook.metrics_text(service=service)
        counts = {site: empty_counts() for site in self.sites}
        unmatched: set[str] = set()
        for sample in parse_exposition(text, names=frozenset({STATUS_METRIC})):
            labels = sample.labels
            if labels.get("route") != service:
                continue
            klass = status_class(labels.get("code", ""))
            site = self._site_of(labels, service)
            if klass is None or site is None:
                if labels.get("node"):
                    unmatched.add(labels.get("upstream_addr") or labels["node"])
                continue
            counts[site][klass] += int(sample.value)
        if unmatched:
            log.warning(
                "gateway answers not matched to a site service=%s nodes=%s",
                service,
                ",".join(sorted(unmatched)),
            )
        return counts

    def ensure_service(
        self,
        service: Service,
        initial_weights: Mapping[str, int] | None = None,
        *,
        public_host: str | None = None,
    ) -> bool:
        """Create or update the service's upstream and route so they match the catalog.

        A new upstream gets ``initial_weights`` (an even split by default). On an existing one the
        site weights are kept and a missing site node joins at weight 0, so no traffic moves to a
        site that had none; an upstream whose sites would all be at 0 gets ``initial_weights`` so
        the service has traffic again. Nothing is written when the gateway
        already matches. Returns True when something was written.

        :param service: the catalog entry of the service.
        :param initial_weights: weights of a new upstream, or of one left with every site at 0.
        :param public_host: host the route matches; the service's ``deploy.host`` by default.
        """
        name = service.name
        defaults = (
            self._checked(name, initial_weights) if initial_weights else split_even(self.sites)
        )
        up_path = self._upstream_path(name)
        current = self._get(up_path, name)
        if current is None:
            weights = dict(defaults)
        else:
            existing = node_weights(current.get("nodes"))
            weights = {
                site: existing.get(ingress.address, 0) for site, ingress in self._ingress.items()
            }
            missing = [s for s, i in self._ingress.items() if i.address not in existing]
            if missing:
                log.warning(
                    "gateway upstream lacks site nodes, adding them at weight 0 service=%s sites=%s",
                    name,
                    ",".join(missing),
                )
        if not any(weights.values()):
            log.warning(
                "gateway upstream had every site at 0, restoring service=%s weights=%s",
                name,
                _format(defaults),
            )
            weights = dict(defaults)
        schemes = {ingress.scheme for ingress in self._ingress.values()}
        if len(schemes) != 1:
            raise GatewayConfigError(
                f"service {name}: the sites' ingress schemes differ ({sorted(schemes)}); one upstream needs one scheme",
                service=name,
            )
        desired_upstream: dict[str, Any] = {
            "name": name,
            "desc": f"{name}: one node per site",
            "type": "roundrobin",
            "scheme": schemes.pop(),
            "pass_host": "rewrite",
            "upstream_host": service.deploy.host,
            "nodes": _node_list(weights, self._ingress),
        }
        changed = False
        if current is None or _differs(current, desired_upstream):
            body = {**_strip(current or {}), **desired_upstream}
            self.hook.admin("PUT", up_path, body, service=name)
            changed = True
        host = public_host or service.deploy.host
        desired_route = {"name": name, "host": host, "uri": ROUTE_URI, "upstream_id": name}
        route_path = f"{ADMIN_PREFIX}/routes/{quote(name, safe='')}"
        route = self._get(route_path, name)
        if route is None or _differs(route, desired_route) or _conflicting(route):
            body = {
                key: value
                for key, value in {**_strip(route or {}), **desired_route}.items()
                if key not in ("hosts", "uris", "upstream", "service_id")
            }
            self.hook.admin("PUT", route_path, body, service=name)
            changed = True
        log.info(
            "gateway service ensured service=%s host=%s changed=%s weights=%s",
            name,
            host,
            changed,
            _format(weights),
        )
        return changed

    def _upstream_path(self, service: str) -> str:
        return f"{ADMIN_PREFIX}/upstreams/{quote(service, safe='')}"

    def _get(self, path: str, service: str) -> dict[str, Any] | None:
        answer = self.hook.admin("GET", path, service=service, accept_statuses=(404,))
        if answer.status == 404:
            return None
        return _value(answer.body, service, path)

    def _require_upstream(self, service: str) -> dict[str, Any]:
        path = self._upstream_path(service)
        upstream = self._get(path, service)
        if upstream is None:
            raise GatewayConfigError(
                f"gateway admin GET {path} (service={service}): no upstream for the service; "
                "create it with the gateway set-up (ensure_service)",
                service=service,
                path=path,
                status=404,
            )
        return upstream

    def _site_weights(
        self, service: str, upstream: Mapping[str, Any], *, strict: bool = True
    ) -> dict[str, int]:
        by_address = node_weights(upstream.get("nodes"))
        weights: dict[str, int] = {}
        for site, ingress in self._ingress.items():
            if ingress.address in by_address:
                weights[site] = by_address[ingress.address]
            elif strict:
                raise GatewayConfigError(
                    f"gateway admin GET {self._upstream_path(service)} (service={service} site={site}): "
                    f"the upstream has no node {ingress.address} for the site; run the gateway set-up (ensure_service)",
                    service=service,
                    site=site,
                    path=self._upstream_path(service),
                )
        strays = {a: w for a, w in by_address.items() if a not in self._by_address and w > 0}
        if strays:
            log.warning(
                "gateway upstream has nodes of no site service=%s nodes=%s",
                service,
                ",".join(f"{a}={w}" for a, w in strays.items()),
            )
        return weights

    def _checked(self, service: str, weights: Mapping[str, int]) -> dict[str, int]:
        unknown = sorted(set(weights) - set(self._ingress))
        missing = sorted(set(self._ingress) - set(weights))
        if unknown or missing:
            raise GatewayConfigError(
                f"service {service}: weights must name every site exactly ({self.sites}); "
                f"unknown={unknown} missing={missing}",
                service=service,
            )
        checked: dict[str, int] = {}
        for site in self._ingress:
            weight = weights[site]
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise GatewayConfigError(
                    f"service {service} site {site}: weight {weight!r} is not a whole number >= 0",
                    service=service,
                    site=site,
                )
            checked[site] = weight
        if not any(checked.values()):
            raise GatewayConfigError(
                f"service {service}: refusing weights {_format(checked)}: every site at 0 would drop all traffic",
                service=service,
            )
        return checked

    def _site_of(self, labels: Mapping[str, str], service: str) -> str | None:
        upstream_addr = labels.get("upstream_addr", "")
        if upstream_addr:
            last = upstream_addr.replace(" : ", ", ").split(",")[-1].strip()
            return self._by_address.get(last)
        node = labels.get("node", "")
        if not node:
            return None
        if node in self._by_address:
            return self._by_address[node]
        owners = [site for site, ingress in self._ingress.items() if ingress.host == node]
        if len(owners) > 1:
            raise GatewayConfigError(
                f"service {service}: sites {owners} share the node IP {node}, and the gateway's "
                f"{STATUS_METRIC} metric has no upstream_addr label to tell them apart; add the extra label "
                "upstream_addr=$upstream_addr to the Prometheus plugin or give each site its own IP",
                service=service,
            )
        return owners[0] if owners else None


def _value(body: Any, service: str, path: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("value"), dict):
        raise GatewayError(
            f"gateway admin {path} (service={service}): the answer has no 'value' object: {str(body)[:200]!r}",
            service=service,
            path=path,
        )
    value: dict[str, Any] = body["value"]
    return value


def _strip(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in _SERVER_FIELDS}


def _differs(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    for key, wanted in desired.items():
        have = current.get(key)
        if key == "nodes":
            if isinstance(have, dict) or node_weights(have) != node_weights(wanted):
                return True
        elif have != wanted:
            return True
    return False


def _conflicting(route: Mapping[str, Any]) -> bool:
    return any(key in route for key in ("hosts", "uris", "upstream", "service_id"))
