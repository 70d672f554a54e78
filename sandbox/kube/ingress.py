"""The site's HTTP entry: ``Host: <name>.<namespace>`` goes to a ready pod of that Service.

Without a Service of that name the Deployment of that name is used. Pods are picked round
robin; a pod annotated ``sandbox.sre.io/fault: http-error-rate=<fraction>`` answers 500 for
that fraction of requests. No ready pod gives 503, an unknown host 404.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from sandbox.kube.controllers import pod_active, pod_ready
from sandbox.kube.kubelet import pod_fault
from sandbox.kube.resources import DEPLOYMENT, POD, SERVICE
from sandbox.kube.selectors import selector_from_match

if TYPE_CHECKING:
    from sandbox.kube.site import Site

log = logging.getLogger(__name__)

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-encoding",
}


class Ingress:
    """Round-robin reverse proxy to the ready pods of a site."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._turn: dict[tuple[str, str], int] = {}
        self._session: aiohttp.ClientSession | None = None

    def backends(self, namespace: str, name: str) -> list[dict[str, Any]] | None:
        """Ready pods behind a host, or None when nothing of that name exists."""
        store = self.site.store
        service = store.get(SERVICE, namespace, name)
        if service is not None:
            selector = service["spec"].get("selector")
            if not selector:
                return []
            matches = selector_from_match({"matchLabels": selector})
        else:
            deploy = store.get(DEPLOYMENT, namespace, name)
            if deploy is None:
                return None
            matches = selector_from_match(deploy["spec"].get("selector"))
        pods = []
        for pod in store.items(POD, namespace):
            if (
                not pod_active(pod)
                or not pod_ready(pod)
                or not matches(pod["metadata"].get("labels") or {})
            ):
                continue
            runner = self.site.kubelet.pods.get(pod["metadata"]["uid"])
            if runner is not None and runner.port:
                pods.append(pod)
        return pods

    async def handle(self, request: web.Request) -> web.StreamResponse:
        host = request.headers.get("Host", "").rsplit(":", 1)[0].strip().lower()
        parts = host.split(".")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            return web.Response(status=404, text=f"no route for host {host!r}\n")
        name, namespace = parts[0], parts[1]
        pods = self.backends(namespace, name)
        if pods is None:
            return web.Response(
                status=404, text=f"no service or deployment {name} in namespace {namespace}\n"
            )
        if not pods:
            return web.Response(status=503, text=f"no ready endpoints for {name}.{namespace}\n")
        turn = self._turn.get((namespace, name), 0)
        self._turn[(namespace, name)] = turn + 1
        pod = pods[turn % len(pods)]
        pod_name = pod["metadata"]["name"]
        fault, rate = pod_fault(pod["metadata"])
        if fault == "http-error-rate" and random.random() < rate:
            return web.Response(
                status=500, text="injected server error\n", headers={"X-Sandbox-Pod": pod_name}
            )
        runner = self.site.kubelet.pods[pod["metadata"]["uid"]]
        return await self._forward(request, runner.port, pod_name)

    async def _forward(self, request: web.Request, port: int, pod_name: str) -> web.StreamResponse:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                auto_decompress=False, timeout=aiohttp.ClientTimeout(total=60)
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-For"] = request.remote or "127.0.0.1"
        headers["X-Forwarded-Host"] = request.headers.get("Host", "")
        body = await request.read()
        url = f"http://127.0.0.1:{port}{request.path_qs}"
        try:
            async with self._session.request(
                request.method, url, headers=headers, data=body or None, allow_redirects=False
            ) as upstream:
                payload = await upstream.read()
                out_headers = {
                    k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP
                }
                if upstream.headers.get("Content-Encoding"):
                    out_headers["Content-Encoding"] = upstream.headers["Content-Encoding"]
                out_headers["X-Sandbox-Pod"] = pod_name
                return web.Response(status=upstream.status, body=payload, headers=out_headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("ingress upstream failed pod=%s error=%s", pod_name, exc)
            return web.Response(
                status=502,
                text=f"upstream {pod_name} failed: {exc}\n",
                headers={"X-Sandbox-Pod": pod_name},
            )

    async def close(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()


def build_ingress_app(site: Site) -> web.Application:
    ingress = Ingress(site)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", ingress.handle)
    app.on_cleanup.append(ingress.close)
    return app
