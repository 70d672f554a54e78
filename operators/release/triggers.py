"""Wait for a Deployment rollout with Kubernetes watches, in the triggerer.

The trigger lists the Deployment and its pods once, then follows both with watch requests from the
listed ``resourceVersion``; every change is judged by :func:`operators.release.status.evaluate_rollout`.
A watch that ends or drops is resumed from the last ``resourceVersion`` seen; a ``410 Gone`` (the
version is too old) re-lists. Transient API trouble (connection errors, 429, 5xx) is retried with
backoff until the rollout's deadline. Requests per rollout therefore stay at about four, however long
the rollout takes (one more pair per ``watch_timeout_seconds`` of waiting).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from operators.release.status import (
    DEFAULT_RESTART_THRESHOLD,
    FAILED,
    PROGRESSING,
    RolloutVerdict,
    evaluate_rollout,
)

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_SECONDS = 5.0


class WatchGone(Exception):
    """The API answered 410 Gone: the resourceVersion is too old and the state must be re-listed."""


class WatchTransient(Exception):
    """The API call failed in a way worth retrying (connection trouble, 429, 5xx)."""


class RolloutWaitTrigger(BaseTrigger):
    """Fire once a Deployment's rollout is done, has failed, or has run out of time.

    Event shape (always): ``{"status": "success" | "failed" | "timeout" | "error", "message": str,
    "details": dict}``.

    :param site: the site's name, for messages.
    :param kubernetes_conn_id: the site's Kubernetes connection.
    :param namespace: namespace of the Deployment.
    :param deployment: name of the Deployment.
    :param container: the container whose image is rolled out.
    :param image: the image the rollout must end on.
    :param deadline: wall-clock time (seconds since the epoch) when the wait gives up.
    :param restart_threshold: restarts of a new pod that count as a crash loop.
    :param watch_timeout_seconds: server-side timeout of one watch request before it is renewed.
    """

    def __init__(
        self,
        *,
        site: str,
        kubernetes_conn_id: str,
        namespace: str,
        deployment: str,
        container: str,
        image: str,
        deadline: float,
        restart_threshold: int = DEFAULT_RESTART_THRESHOLD,
        watch_timeout_seconds: int = 300,
    ) -> None:
        super().__init__()
        self.site = site
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace
        self.deployment = deployment
        self.container = container
        self.image = image
        self.deadline = float(deadline)
        self.restart_threshold = restart_threshold
        self.watch_timeout_seconds = watch_timeout_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "site": self.site,
                "kubernetes_conn_id": self.kubernetes_conn_id,
                "namespace": self.namespace,
                "deployment": self.deployment,
                "container": self.container,
                "image": self.image,
                "deadline": self.deadline,
                "restart_threshold": self.restart_threshold,
                "watch_timeout_seconds": self.watch_timeout_seconds,
            },
        )

    def _where(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "namespace": self.namespace,
            "deployment": self.deployment,
            "image": self.image,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook

        self.log.info(
            "rollout wait start site=%s deployment=%s/%s image=%s",
            self.site,
            self.namespace,
            self.deployment,
            self.image,
        )
        watcher: RolloutWatcher | None = None
        try:
            hook = AsyncKubernetesHook(conn_id=self.kubernetes_conn_id)
            async with hook.get_conn() as api:
                watcher = RolloutWatcher(
                    api,
                    namespace=self.namespace,
                    deployment=self.deployment,
                    container=self.container,
                    image=self.image,
                    restart_threshold=self.restart_threshold,
                    watch_timeout_seconds=self.watch_timeout_seconds,
                    deadline=self.deadline,
                    log=self.log,
                )
                remaining = max(0.0, self.deadline - time.time())
                try:
                    verdict = await asyncio.wait_for(watcher.run(), timeout=remaining)
                except TimeoutError:
                    last = watcher.verdict
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "message": f"site {self.site}: rollout of {self.namespace}/{self.deployment} "
                            f"did not finish before its deadline; last state: {last.message}",
                            "details": {
                                **self._where(),
                                **dict(last.details),
                                "requests": watcher.requests,
                            },
                        }
                    )
                    return
        except Exception as err:
            self.log.exception(
                "rollout wait error site=%s deployment=%s", self.site, self.deployment
            )
            yield TriggerEvent(
                {
                    "status": "error",
                    "message": f"site {self.site}: watching the rollout of {self.namespace}/{self.deployment} "
                    f"failed: {type(err).__name__}: {err}",
                    "details": {**self._where(), "requests": watcher.requests if watcher else 0},
                }
            )
            return
        status = "failed" if verdict.state == FAILED else "success"
        self.log.info(
            "rollout wait end site=%s deployment=%s status=%s requests=%s",
            self.site,
            self.deployment,
            status,
            watcher.requests,
        )
        yield TriggerEvent(
            {
                "status": status,
                "message": f"site {self.site}: {verdict.message}",
                "details": {**self._where(), **dict(verdict.details), "requests": watcher.requests},
            }
        )


class RolloutWatcher:
    """Follow one Deployment and its pods until the rollout is judged done or failed.

    :param api: an async ApiClient for the site (explicit, never the process default).
    :param namespace: namespace of the Deployment.
    :param deployment: name of the Deployment.
    :param container: container whose image is rolled out.
    :param image: the image the rollout must end on.
    :param restart_threshold: restarts of a new pod that count as a crash loop.
    :param watch_timeout_seconds: server-side timeout of one watch request.
    :param deadline: wall-clock time after which retries stop.
    :param log: where to log recovered trouble.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        namespace: str,
        deployment: str,
        container: str,
        image: str,
        restart_threshold: int,
        watch_timeout_seconds: int,
        deadline: float,
        log: Any,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = deployment
        self.container = container
        self.image = image
        self.restart_threshold = restart_threshold
        self.watch_timeout_seconds = watch_timeout_seconds
        self.deadline = deadline
        self.log = log
        self.requests = 0
        self.deployment_object: dict[str, Any] | None = None
        self.pods: dict[str, dict[str, Any]] = {}
        self.selector: str | None = None
        self.verdict = RolloutVerdict(PROGRESSING, "not looked at yet", {})
        self._changed = asyncio.Event()

    async def run(self) -> RolloutVerdict:
        deployment_rv = await self._with_retries(self._list_deployment)
        pods_rv = await self._with_retries(self._list_pods)
        if self._judge().finished:
            return self.verdict
        followers = [
            asyncio.create_task(self._follow("deployments", deployment_rv, self._list_deployment)),
            asyncio.create_task(self._follow("pods", pods_rv, self._list_pods)),
        ]
        try:
            while True:
                waiter = asyncio.create_task(self._changed.wait())
                done, _ = await asyncio.wait(
                    [waiter, *followers], return_when=asyncio.FIRST_COMPLETED
                )
                for task in followers:
                    if task in done:
                        waiter.cancel()
                        task.result()  # a follower only ends by raising
                self._changed.clear()
                if self._judge().finished:
                    return self.verdict
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)

    def _judge(self) -> RolloutVerdict:
        self.verdict = evaluate_rollout(
            self.deployment_object,
            self.pods.values(),
            container=self.container,
            image=self.image,
            restart_threshold=self.restart_threshold,
        )
        return self.verdict

    def _path(self, kind: str) -> str:
        group = "/apis/apps/v1" if kind == "deployments" else "/api/v1"
        return f"{group}/namespaces/{self.namespace}/{kind}"

    def _query(self, kind: str) -> dict[str, str]:
        if kind == "deployments":
            return {"fieldSelector": f"metadata.name={self.name}"}
        return {"labelSelector": self.selector or ""}

    async def _get(self, path: str, query: Mapping[str, str], timeout: float) -> Any:
        """One GET through the ApiClient (auth, TLS and host from the site's configuration)."""
        import aiohttp
        from kubernetes_asyncio.client.exceptions import ApiException

        self.requests += 1
        try:
            response = await self.api.call_api(
                path,
                "GET",
                query_params=list(query.items()),
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except ApiException as err:
            raise self._classify(err.status, str(err.reason)) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise WatchTransient(f"GET {path}: {type(err).__name__}: {err}") from None
        if not 200 <= response.status < 300:
            body = await response.text()
            response.release()
            raise self._classify(response.status, body[:300])
        return response

    def _classify(self, status: int | None, detail: str) -> Exception:
        if status == 410:
            return WatchGone(detail)
        if status in RETRYABLE_STATUSES or not status:
            return WatchTransient(f"HTTP {status}: {detail}")
        return RuntimeError(f"Kubernetes API answered HTTP {status}: {detail}")

    async def _list(self, kind: str) -> tuple[list[dict[str, Any]], str]:
        response = await self._get(self._path(kind), self._query(kind), timeout=30.0)
        try:
            data = json.loads(await response.read())
        finally:
            response.release()
        return list(data.get("items") or []), str(
            data.get("metadata", {}).get("resourceVersion") or ""
        )

    async def _list_deployment(self) -> str:
        items, rv = await self._list("deployments")
        self.deployment_object = items[0] if items else None
        if self.deployment_object is not None:
            labels = (
                self.deployment_object.get("spec", {}).get("selector", {}).get("matchLabels") or {}
            )
            self.selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        self._changed.set()
        return rv

    async def _list_pods(self) -> str:
        if self.selector is None:
            self.pods = {}
            return ""
        items, rv = await self._list("pods")
        self.pods = {pod["metadata"]["name"]: pod for pod in items}
        self._changed.set()
        return rv

    async def _with_retries(self, call: Callable[[], Any]) -> Any:
        delay = 0.2
        while True:
            try:
                return await call()
            except WatchTransient as err:
                if time.time() + delay >= self.deadline:
                    raise
                self.log.warning("kubernetes api trouble, retrying in %.1fs: %s", delay, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    async def _follow(self, kind: str, resource_version: str, relist: Callable[[], Any]) -> None:
        """Watch ``kind`` from ``resource_version`` forever, resuming and re-listing as needed."""
        delay = 0.2
        while True:
            if kind == "pods" and self.selector is None:
                await asyncio.sleep(3600)
                continue
            query = {
                **self._query(kind),
                "watch": "true",
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(self.watch_timeout_seconds),
            }
            if resource_version:
                query["resourceVersion"] = resource_version
            try:
                response = await self._get(
                    self._path(kind), query, timeout=self.watch_timeout_seconds + 30.0
                )
                try:
                    resource_version = await self._consume(kind, response, resource_version)
                finally:
                    response.release()
                delay = 0.2
            except WatchGone:
                self.log.warning("watch of %s expired (410 Gone); re-listing", kind)
                resource_version = await self._with_retries(relist)
            except WatchTransient as err:
                if time.time() + delay >= self.deadline:
                    raise
                self.log.warning(
                    "watch of %s dropped (%s); resuming from resourceVersion=%s in %.1fs",
                    kind,
                    err,
                    resource_version,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)

    async def _consume(self, kind: str, response: Any, resource_version: str) -> str:
        import aiohttp

        try:
            async for raw in response.content:
                line = raw.strip()
                if not line:
                    continue
                event = json.loads(line)
                kind_of_event = event.get("type")
                obj = event.get("object") or {}
                if kind_of_event == "ERROR":
                    raise self._classify(obj.get("code"), str(obj.get("message")))
                resource_version = str(
                    obj.get("metadata", {}).get("resourceVersion") or resource_version
                )
                if kind_of_event == "BOOKMARK":
                    continue
                self._apply(kind, kind_of_event, obj)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
            raise WatchTransient(f"watch of {kind}: {type(err).__name__}: {err}") from None
        return resource_version

    def _apply(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        if kind == "deployments":
            self.deployment_object = None if event_type == "DELETED" else obj
        else:
            name = obj.get("metadata", {}).get("name")
            if event_type == "DELETED":
                self.pods.pop(name, None)
            else:
                self.pods[name] = obj
        self._changed.set()
