"""The stand-in entry gateway: an APISIX-like admin API, a real proxy and Prometheus metrics.

Three listeners, on 127.0.0.1 unless another host is given:

- admin: ``/apisix/admin/{upstreams,routes}[/{id}[/{path}]]`` (see :mod:`sandbox.gateway.admin`),
  key in ``X-API-KEY`` (or ``?api_key=``) when one is set, ``401 {"error_msg": "failed to check
  token"}`` otherwise; plus ``/sandbox/faults`` (GET, PUT/POST, DELETE) to make the admin API
  answer 503 or 429, stall, or drop connections for some seconds or some requests (optionally
  only for some methods), and
  ``/sandbox/requests`` listing the admin calls seen;
- proxy: matches a route by host (exact or ``*.suffix``) and uri (exact or ``prefix*``), picks a
  node of its upstream by smooth weighted round robin, rewrites Host as ``pass_host`` says and
  forwards; a node that refuses the connection is retried on another one up to ``retries``
  (default: number of nodes - 1) and answers ``502`` when none is left, ``504`` on a read timeout;
- metrics: ``/apisix/prometheus/metrics`` with ``apisix_http_status{code,route,matched_uri,
  matched_host,service,consumer,node}`` (``node`` is the node's IP, as in APISIX) plus, unless
  turned off, the extra label ``upstream_addr`` (``host:port``), as APISIX gives it when the
  Prometheus plugin is configured with ``extra_labels: [{upstream_addr: $upstream_addr}]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.gateway.admin import KINDS, AdminError, AdminStore, Node, parse_nodes

log = logging.getLogger("sandbox.gateway")

ADMIN_PREFIX = "/apisix/admin"
METRICS_PATH = "/apisix/prometheus/metrics"
STATUS_LABELS = ("code", "route", "matched_uri", "matched_host", "service", "consumer", "node")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)
_DEFAULT_TIMEOUT = {"connect": 6.0, "send": 60.0, "read": 60.0}


class SmoothWeightedRoundRobin:
    """Nginx's smooth weighted round robin over the nodes of one upstream version."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.current = [0] * len(nodes)

    def pick(self, exclude: set[str] | frozenset[str] = frozenset()) -> Node | None:
        best = -1
        total = 0
        for index, node in enumerate(self.nodes):
            if node.weight <= 0 or node.address in exclude:
                continue
            self.current[index] += node.weight
            total += node.weight
            if best < 0 or self.current[index] > self.current[best]:
                best = index
        if best < 0:
            return None
        self.current[best] -= total
        return self.nodes[best]


@dataclass
class Fault:
    """What the admin API does instead of answering, and for how long."""

    mode: str
    until: float | None = None
    remaining: int | None = None
    retry_after: float | None = None
    delay_seconds: float = 0.0
    methods: frozenset[str] | None = None
    hits: int = 0

    def applies(self, method: str, now: float) -> bool:
        return self.active(now) and (self.methods is None or method in self.methods)

    def active(self, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        return not (self.remaining is not None and self.remaining <= 0)

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "active": self.active(now),
            "seconds_left": None if self.until is None else max(0.0, round(self.until - now, 3)),
            "requests_left": self.remaining,
            "retry_after": self.retry_after,
            "delay_seconds": self.delay_seconds,
            "methods": sorted(self.methods) if self.methods is not None else None,
            "hits": self.hits,
        }


@dataclass
class GatewayState:
    admin_key: str | None
    upstream_addr_label: bool = True
    store: AdminStore = field(default_factory=AdminStore)
    status_counts: Counter[tuple[str, ...]] = field(default_factory=Counter)
    balancers: dict[str, tuple[int, SmoothWeightedRoundRobin]] = field(default_factory=dict)
    fault: Fault | None = None
    admin_requests: list[dict[str, Any]] = field(default_factory=list)


class Gateway:
    """The stand-in gateway; ``await start()`` then ``await stop()`` on one event loop.

    :param admin_key: key the admin API requires in ``X-API-KEY``; no check when None.
    :param host: address to listen on; the URLs name 127.0.0.1 when it is 0.0.0.0 or ``::``.
    :param upstream_addr_label: add the ``upstream_addr`` label to ``apisix_http_status``.
    """

    def __init__(
        self,
        admin_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        upstream_addr_label: bool = True,
    ) -> None:
        self.host = host
        self.state = GatewayState(admin_key=admin_key, upstream_addr_label=upstream_addr_label)
        self._runners: list[web.AppRunner] = []
        self._client: aiohttp.ClientSession | None = None
        self.urls: dict[str, str] = {}

    async def start(
        self, admin_port: int = 0, proxy_port: int = 0, metrics_port: int = 0
    ) -> dict[str, str]:
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, limit=0),
            auto_decompress=False,
        )
        admin = web.Application(
            middlewares=[self._admin_middleware], client_max_size=4 * 1024 * 1024
        )
        admin.router.add_route("*", "/sandbox/faults", self._faults)
        admin.router.add_get("/sandbox/requests", self._requests)
        admin.router.add_route("*", ADMIN_PREFIX + "/{kind}", self._admin_collection)
        admin.router.add_route("*", ADMIN_PREFIX + "/{kind}/{rid}", self._admin_item)
        admin.router.add_route("*", ADMIN_PREFIX + "/{kind}/{rid}/{sub:.+}", self._admin_item)
        proxy = web.Application(client_max_size=16 * 1024 * 1024)
        proxy.router.add_route("*", "/{tail:.*}", self._proxy)
        metrics = web.Application()
        metrics.router.add_get(METRICS_PATH, self._metrics)
        admin_url = await self._listen(admin, admin_port)
        proxy_url = await self._listen(proxy, proxy_port)
        metrics_url = await self._listen(metrics, metrics_port)
        self.urls = {"admin": admin_url, "proxy": proxy_url, "metrics": metrics_url + METRICS_PATH}
        return dict(self.urls)

    async def _listen(self, app: web.Application, port: int) -> str:
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.host, port).start()
        self._runners.append(runner)
        bound = runner.addresses[0]
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://[{host}]:{bound[1]}" if ":" in host else f"http://{host}:{bound[1]}"

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self._client is not None:
            await self._client.close()
            self._client = None

    # ---- admin API -------------------------------------------------------------------------

    @web.middleware
    async def _admin_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith(ADMIN_PREFIX):
            return await handler(request)
        record: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "time": time.time(),
        }
        self.state.admin_requests.append(record)
        fault = self.state.fault
        now = time.monotonic()
        if fault is not None and fault.applies(request.method, now):
            fault.hits += 1
            if fault.remaining is not None:
                fault.remaining -= 1
            record["fault"] = fault.mode
            if fault.mode == "drop":
                record["status"] = None
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
            if fault.mode == "delay":
                await request.read()
                await asyncio.sleep(fault.delay_seconds)
            else:
                status = 429 if fault.mode == "429" else 503
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                record["status"] = status
                text = "Too Many Requests" if status == 429 else "Service Temporarily Unavailable"
                return web.Response(
                    status=status,
                    text=f"<html><body><h1>{status} {text}</h1></body></html>",
                    content_type="text/html",
                    headers=headers,
                )
        key = self.state.admin_key
        if key is not None and key not in (
            request.headers.get("X-API-KEY"),
            request.query.get("api_key"),
        ):
            record["status"] = 401
            return _json(401, {"error_msg": "failed to check token"})
        response = await handler(request)
        record["status"] = response.status
        return response

    async def _admin_collection(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in KINDS:
            return _json(404, {"error_msg": "not found"})
        if request.method == "GET":
            return _json(200, self.state.store.list(kind))
        if request.method == "POST":
            body = await _body(request)
            if isinstance(body, web.Response):
                return body
            rid = str(int(time.time() * 1_000_000))
            return self._call(lambda: self.state.store.put(kind, rid, body))
        return _json(405, {"error_msg": f"method {request.method} not allowed on {request.path}"})

    async def _admin_item(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        rid = request.match_info["rid"]
        sub = request.match_info.get("sub", "")
        store = self.state.store
        if kind not in KINDS:
            return _json(404, {"error_msg": "not found"})
        if request.method == "GET" and not sub:
            return self._call(lambda: (200, store.read(kind, rid)))
        if request.method == "DELETE" and not sub:
            return self._call(lambda: (200, store.delete(kind, rid)))
        if request.method in ("PUT", "PATCH"):
            body = await _body(request)
            if isinstance(body, web.Response):
                return body
            if request.method == "PUT" and not sub:
                return self._call(lambda: store.put(kind, rid, body))
            if request.method == "PATCH":
                return self._call(lambda: (200, store.patch(kind, rid, body, sub)))
        return _json(405, {"error_msg": f"method {request.method} not allowed on {request.path}"})

    def _call(self, action: Any) -> web.Response:
        try:
            status, body = action()
        except AdminError as err:
            return _json(err.status, err.body)
        return _json(status, body)

    async def _faults(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        if request.method == "DELETE":
            self.state.fault = None
            return _json(200, {"fault": None})
        if request.method in ("PUT", "POST"):
            try:
                spec = await request.json()
                mode = str(spec["mode"])
                if mode not in ("503", "429", "drop", "delay"):
                    raise ValueError(f"mode {mode!r} is not 503, 429, drop or delay")
                seconds = spec.get("seconds")
                requests = spec.get("requests")
                self.state.fault = Fault(
                    mode=mode,
                    until=None if seconds is None else now + float(seconds),
                    remaining=None if requests is None else int(requests),
                    retry_after=None
                    if spec.get("retry_after") is None
                    else float(spec["retry_after"]),
                    delay_seconds=float(spec.get("delay_seconds") or 0.0),
                    methods=frozenset(m.upper() for m in spec["methods"])
                    if spec.get("methods")
                    else None,
                )
            except (ValueError, KeyError, TypeError) as err:
                return _json(400, {"error_msg": f"bad fault: {err}"})
        fault = self.state.fault
        return _json(200, {"fault": fault.describe(now) if fault else None})

    async def _requests(self, request: web.Request) -> web.Response:
        return _json(200, {"requests": list(self.state.admin_requests)})

    # ---- proxy -----------------------------------------------------------------------------

    def _match(
        self, host: str, path: str, method: str
    ) -> tuple[str, dict[str, Any], str, str] | None:
        routes = self.state.store.snapshot()["routes"]
        candidates = []
        for rid, entry in routes.items():
            route = entry.value
            if route.get("status", 1) != 1:
                continue
            if route.get("methods") and method not in route["methods"]:
                continue
            hosts = route.get("hosts") or ([route["host"]] if route.get("host") else [])
            matched_host = ""
            if hosts:
                matched_host = next((h for h in hosts if _host_matches(h, host)), "")
                if not matched_host:
                    continue
            uris = route.get("uris") or [route.get("uri", "")]
            matched_uri = next((u for u in uris if _uri_matches(u, path)), None)
            if matched_uri is None:
                continue
            exact = not matched_uri.endswith("*")
            order = (
                -int(route.get("priority", 0)),
                not bool(hosts),
                not exact,
                -len(matched_uri),
                rid,
            )
            candidates.append((order, rid, route, matched_uri, matched_host))
        if not candidates:
            return None
        _, rid, route, matched_uri, matched_host = min(candidates, key=lambda c: c[0])
        return rid, route, matched_uri, matched_host

    def _upstream(self, rid: str, route: dict[str, Any]) -> tuple[str, dict[str, Any], int] | None:
        if route.get("upstream_id") is not None:
            uid = str(route["upstream_id"])
            entry = self.state.store.get("upstreams", uid)
            if entry is None:
                return None
            return "upstream:" + uid, entry.value, entry.modified_index
        entry = self.state.store.get("routes", rid)
        return "route:" + rid, route["upstream"], entry.modified_index if entry else 0

    def _balancer(
        self, key: str, upstream: dict[str, Any], version: int
    ) -> SmoothWeightedRoundRobin:
        known = self.state.balancers.get(key)
        if known is None or known[0] != version:
            balancer = SmoothWeightedRoundRobin(
                parse_nodes(upstream["nodes"], upstream.get("scheme", "http"))
            )
            self.state.balancers[key] = (version, balancer)
            return balancer
        return known[1]

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        matched = self._match(
            _request_host(request.headers.get("Host", "")), request.path, request.method
        )
        if matched is None:
            self._count("404", "", "", "", "", "")
            return _json(404, {"error_msg": "404 Route Not Found"})
        rid, route, matched_uri, matched_host = matched
        found = self._upstream(rid, route)
        labels = (rid, matched_uri, matched_host, str(route.get("service_id") or ""))
        if found is None:
            self._count("503", *labels, "")
            return _json(503, {"error_msg": "failed to find upstream"})
        key, upstream, version = found
        balancer = self._balancer(key, upstream, version)
        retries = upstream.get("retries")
        if retries is None:
            retries = max(0, len(balancer.nodes) - 1)
        timeout = {**_DEFAULT_TIMEOUT, **(upstream.get("timeout") or {})}
        body = await request.read()
        tried: set[str] = set()
        node: Node | None = None
        while True:
            node = balancer.pick(exclude=tried)
            if node is None:
                break
            tried.add(node.address)
            try:
                response = await self._forward(request, body, upstream, node, timeout)
            except aiohttp.ClientConnectorError as err:
                log.warning(
                    "upstream connect failed node=%s route=%s error=%s", node.address, rid, err
                )
                if len(tried) <= retries:
                    continue
                self._count("502", *labels, node.host, node.address)
                return _bad_gateway(502)
            except TimeoutError:
                self._count("504", *labels, node.host, node.address)
                return _bad_gateway(504)
            except aiohttp.ClientError as err:
                log.warning("upstream failed node=%s route=%s error=%s", node.address, rid, err)
                self._count("502", *labels, node.host, node.address)
                return _bad_gateway(502)
            self._count(str(response.status), *labels, node.host, node.address)
            return response
        last = sorted(tried)[-1] if tried else ""
        self._count("502", *labels, last.rsplit(":", 1)[0], last)
        return _bad_gateway(502)

    async def _forward(
        self,
        request: web.Request,
        body: bytes,
        upstream: dict[str, Any],
        node: Node,
        timeout: dict[str, float],
    ) -> web.Response:
        assert self._client is not None
        scheme = upstream.get("scheme", "http")
        host_mode = upstream.get("pass_host", "pass")
        if host_mode == "rewrite":
            upstream_host = str(upstream["upstream_host"])
        elif host_mode == "node":
            default_port = 443 if scheme == "https" else 80
            upstream_host = node.host if node.port == default_port else node.address
        else:
            upstream_host = request.headers.get("Host", "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Host"] = upstream_host
        peer = request.remote or ""
        forwarded = request.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{forwarded}, {peer}" if forwarded else peer
        headers["X-Forwarded-Proto"] = request.scheme
        headers["X-Forwarded-Host"] = request.headers.get("Host", "")
        url = f"{scheme}://{node.address}{request.rel_url}"
        client_timeout = aiohttp.ClientTimeout(
            sock_connect=float(timeout["connect"]), sock_read=float(timeout["read"])
        )
        async with self._client.request(
            request.method,
            url,
            headers=headers,
            data=body or None,
            timeout=client_timeout,
            allow_redirects=False,
        ) as upstream_response:
            payload = await upstream_response.read()
            out_headers = {
                k: v for k, v in upstream_response.headers.items() if k.lower() not in _HOP_BY_HOP
            }
        out_headers["Server"] = "APISIX/3.11.0"
        return web.Response(status=upstream_response.status, body=payload, headers=out_headers)

    def _count(
        self,
        code: str,
        route: str,
        matched_uri: str,
        matched_host: str,
        service: str,
        node: str,
        addr: str = "",
    ) -> None:
        self.state.status_counts[
            (code, route, matched_uri, matched_host, service, "", node, addr)
        ] += 1

    # ---- metrics ---------------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.exposition(), content_type="text/plain", charset="utf-8")

    def exposition(self) -> str:
        lines = [
            "# HELP apisix_http_requests_total The total number of client requests since APISIX started",
            "# TYPE apisix_http_requests_total gauge",
            f"apisix_http_requests_total {sum(self.state.status_counts.values())}",
            "# HELP apisix_http_status HTTP status codes per service in APISIX",
            "# TYPE apisix_http_status counter",
        ]
        names = STATUS_LABELS + (("upstream_addr",) if self.state.upstream_addr_label else ())
        for labels, count in sorted(self.state.status_counts.items()):
            values = labels if self.state.upstream_addr_label else labels[:-1]
            rendered = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
            lines.append(f"apisix_http_status{{{rendered}}} {count}")
        return "\n".join(lines) + "\n"


def _request_host(header: str) -> str:
    """The host name of a Host header, without the port."""
    header = header.strip().lower()
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _host_matches(pattern: str, host: str) -> bool:
    pattern = pattern.lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


def _uri_matches(pattern: str, path: str) -> bool:
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return pattern == path


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _json(status: int, body: Any) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers={"Server": "APISIX/3.11.0"},
    )


def _bad_gateway(status: int) -> web.Response:
    text = "502 Bad Gateway" if status == 502 else "504 Gateway Time-out"
    return web.Response(
        status=status,
        text=f"<html>\n<head><title>{text}</title></head>\n<body>\n<center><h1>{text}</h1></center>\n"
        "<hr><center>openresty</center>\n</body>\n</html>\n",
        content_type="text/html",
        headers={"Server": "APISIX/3.11.0"},
    )


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw or b"null")
    except ValueError as err:
        return _json(400, {"error_msg": f"invalid request body: {err}"})
