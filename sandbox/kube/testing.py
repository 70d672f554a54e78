"""Run sites inside a test process: ``with run_site("site-a", images_dir=...) as site:``.

Each site runs its own event loop in a thread; two sites side by side share nothing. On exit
the servers stop and every pod process of the site is killed.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.kube.site import Site, SiteOptions


class FaultInjector:
    """Client of a site's ``/sandbox/faults`` endpoint."""

    def __init__(self, api_url: str) -> None:
        self.netloc = urllib.parse.urlsplit(api_url).netloc

    def _call(self, method: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        connection = http.client.HTTPConnection(self.netloc, timeout=10)
        try:
            connection.request(
                method, "/sandbox/faults", body=data, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            payload = response.read()
            if response.status >= 400:
                raise RuntimeError(
                    f"fault endpoint answered {response.status}: {payload.decode(errors='replace')}"
                )
            return json.loads(payload or b"null")
        finally:
            connection.close()

    def add(self, rule: dict[str, Any] | list[dict[str, Any]]) -> Any:
        return self._call("POST", rule)

    def throttle(
        self,
        count: int = 1,
        retry_after: int = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> Any:
        """The next `count` matching requests answer 429 with Retry-After."""
        return self.add(
            {
                "status": 429,
                "count": count,
                "retry_after": retry_after,
                "method": method,
                "path": path,
            }
        )

    def error(
        self, status: int = 500, count: int = 1, method: str | None = None, path: str | None = None
    ) -> Any:
        """The next `count` matching requests answer `status` (500, 502, 503 or 504)."""
        return self.add({"status": status, "count": count, "method": method, "path": path})

    def slow(
        self, delay_ms: float, count: int = 1, method: str | None = None, path: str | None = None
    ) -> Any:
        """The next `count` matching requests wait `delay_ms` before being answered."""
        return self.add({"delay_ms": delay_ms, "count": count, "method": method, "path": path})

    def drop_streams(self, path: str | None = None, count: int | None = None) -> Any:
        """Cut open watch/log streams now (and `count` streams opened later)."""
        rule: dict[str, Any] = {"drop_streams": True, "path": path}
        if count is not None:
            rule["count"] = count
        return self.add(rule)

    def clear(self) -> Any:
        return self._call("DELETE")

    def list(self) -> Any:
        return self._call("GET")["rules"]


@dataclass
class RunningSite:
    """What a test needs from a running site."""

    name: str
    api_url: str
    ingress_url: str
    kubeconfig_path: Path
    token: str
    faults: FaultInjector
    site: Site
    loop: asyncio.AbstractEventLoop

    @property
    def https_kubeconfig_path(self) -> Path:
        """Kubeconfig for the HTTPS listener (``tls=True``); kubectl needs it to send the token."""
        return Site.https_kubeconfig_path(self.kubeconfig_path)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run a plain function on the site's loop and return its result."""

        async def invoke() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(invoke(), self.loop).result(timeout=30)


class _SiteThread(threading.Thread):
    def __init__(self, options: SiteOptions) -> None:
        super().__init__(name=f"kube-{options.name}", daemon=True)
        self.options = options
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.site: Site | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None

    def run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        try:
            self.site = Site(self.options)
            await self.site.start()
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        await self._stop_event.wait()
        await self.site.stop()

    def stop(self) -> None:
        if self.loop is not None and self._stop_event is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop_event.set)
        self.join(timeout=30)


@contextmanager
def run_site(
    name: str = "site-a",
    *,
    images_dir: str | Path | None = None,
    kubeconfig_path: str | Path | None = None,
    **options: Any,
) -> Iterator[RunningSite]:
    """Start a site in this process and stop it (and its pods) on exit.

    Keyword options are the fields of :class:`sandbox.kube.site.SiteOptions` (``speed``,
    ``namespaces``, ``auto_create_namespaces``, ``history_size``, ``state_dir``, ``token`` ...).
    """
    with tempfile.TemporaryDirectory(prefix=f"kubecfg-{name}-") as scratch:
        path = Path(kubeconfig_path) if kubeconfig_path else Path(scratch) / "kubeconfig"
        if "namespaces" in options:
            options["namespaces"] = tuple(options["namespaces"])
        site_options = SiteOptions(
            name=name,
            kubeconfig_path=path,
            images_dir=Path(images_dir) if images_dir else None,
            **options,
        )
        thread = _SiteThread(site_options)
        thread.start()
        thread.ready.wait(timeout=30)
        if thread.error is not None:
            thread.join(timeout=5)
            raise RuntimeError(f"site {name} failed to start") from thread.error
        assert thread.site is not None and thread.loop is not None
        site = thread.site
        try:
            yield RunningSite(
                name=name,
                api_url=site.api_url,
                ingress_url=site.ingress_url,
                kubeconfig_path=path,
                token=site.token,
                faults=FaultInjector(site.api_url),
                site=site,
                loop=thread.loop,
            )
        finally:
            thread.stop()
