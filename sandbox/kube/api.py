"""The HTTP API of a site: routing, auth, lists, watches, logs, patches and `Status` errors."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.kube.logs import LogBuffer, LogQuery, render
from sandbox.kube.meta import (
    ApiError,
    bad_request,
    field_invalid,
    invalid,
    not_found,
    parse_rfc3339,
)
from sandbox.kube.patch import json_patch, merge_patch, strategic_merge_patch
from sandbox.kube.resources import (
    BY_PATH,
    DEPLOYMENT,
    GROUPS,
    POD,
    REPLICASET,
    Resource,
    discovery_entries,
)
from sandbox.kube.selectors import parse_field_selector, parse_label_selector, selector_to_string
from sandbox.kube.store import Watcher
from sandbox.kube.tables import render_table

if TYPE_CHECKING:
    from sandbox.kube.site import Site

log = logging.getLogger(__name__)

VERSION = {
    "major": "1",
    "minor": "32",
    "emulationMajor": "1",
    "emulationMinor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T16:02:27Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}
UNAUTHENTICATED_PREFIXES = ("/sandbox/", "/healthz", "/livez", "/readyz", "/version")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(obj), status=status, content_type="application/json", headers=headers
    )


def error_response(error: ApiError) -> web.Response:
    return json_response(error.status(), error.code, error.headers)


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1", "yes")


def _int(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise bad_request(f'invalid value for {name}: "{value}"') from exc


class Api:
    """Request handlers bound to one site."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.store = site.store

    # ---- entry ------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            if request.path.startswith("/sandbox/"):
                return await self.admin(request)
            if not request.path.startswith(UNAUTHENTICATED_PREFIXES):
                header = request.headers.get("Authorization", "")
                if header != f"Bearer {self.site.token}":
                    raise ApiError(401, "Unauthorized", "Unauthorized")
                await self.site.faults.apply(request.method, request.path_qs)
            return await self.route(request)
        except ApiError as error:
            return error_response(error)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("request failed path=%s", request.path)
            return error_response(
                ApiError(
                    500,
                    "InternalError",
                    f"Internal error occurred: {exc}",
                    {"causes": [{"message": str(exc)}]},
                )
            )

    async def admin(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/sandbox/faults":
            if request.method == "POST":
                try:
                    data = await request.json()
                except ValueError as exc:
                    raise bad_request(f"body is not JSON: {exc}") from exc
                return json_response({"added": self.site.faults.add(data)}, 201)
            if request.method == "DELETE":
                self.site.faults.clear()
                return json_response({"cleared": True})
            if request.method == "GET":
                return json_response({"rules": self.site.faults.describe()})
        if request.path == "/sandbox/site" and request.method == "GET":
            return json_response(
                {
                    "site": self.site.name,
                    "api": self.site.api_url,
                    "ingress": self.site.ingress_url,
                    "resourceVersion": str(self.store.resource_version),
                    "pods": len(self.site.kubelet.pods),
                }
            )
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    async def route(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return json_response(VERSION)
        if path == "/api":
            return json_response(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {
                            "clientCIDR": "0.0.0.0/0",
                            "serverAddress": f"127.0.0.1:{self.site.api_port}",
                        }
                    ],
                }
            )
        if path == "/apis":
            return json_response(
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [self._group(g) for g in GROUPS],
                }
            )
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 2:
            if parts[1] not in GROUPS:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if len(parts) == 2:
                return json_response(
                    self._group(parts[1]) | {"kind": "APIGroup", "apiVersion": "v1"}
                )
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return web.Response(status=404, text="404 page not found\n")
        if (group and version not in GROUPS.get(group, [])) or (not group and version != "v1"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            group_version = f"{group}/{version}" if group else version
            return json_response(
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": group_version,
                    "resources": discovery_entries(group, version),
                }
            )
        namespace: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (group == "" and len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        resource = BY_PATH.get((group, version, rest[0]))
        if resource is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if resource.namespaced and namespace is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub is not None and sub not in resource.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return await self.dispatch(request, resource, namespace, name, sub)

    @staticmethod
    def _group(name: str) -> dict[str, Any]:
        versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in GROUPS[name]]
        return {"name": name, "versions": versions, "preferredVersion": versions[0]}

    async def dispatch(
        self,
        request: web.Request,
        resource: Resource,
        namespace: str | None,
        name: str | None,
        sub: str | None,
    ) -> web.StreamResponse:
        method = request.method
        query = request.query
        dry_run = "All" in query.getall("dryRun", [])
        if name is None:
            if method == "GET":
                if _bool(query.get("watch")):
                    return await self.watch(request, resource, namespace)
                return self.list(request, resource, namespace)
            if method == "POST":
                body = await self._body(request)
                obj = self.site.create_object(resource, body, namespace=namespace, dry_run=dry_run)
                return json_response(obj, 201)
            if method == "DELETE":
                return self.delete_collection(request, resource, namespace)
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        ns = namespace or ""
        if sub == "log" and method == "GET":
            return await self.pod_log(request, ns, name)
        if sub == "scale":
            return await self.scale(request, resource, ns, name)
        if method == "GET":
            obj = self._get(resource, ns, name)
            return self._respond(request, resource, obj)
        if method == "PUT":
            body = await self._body(request)
            return json_response(
                self.site.update_object(resource, ns, name, body, subresource=sub, dry_run=dry_run)
            )
        if method == "PATCH":
            body = await self._raw(request)
            applying = request.content_type == "application/apply-patch+yaml"
            if (
                applying
                and sub is None
                and self.store.get(resource, ns if resource.namespaced else "", name) is None
            ):
                if not isinstance(body, dict):
                    raise bad_request("the body of the request was in an unknown format")
                body.setdefault("metadata", {}).setdefault("name", name)
                created = self.site.create_object(
                    resource, body, namespace=namespace, dry_run=dry_run
                )
                return json_response(created, 201)
            obj = self._patch(request, resource, ns, name, body, sub)
            return json_response(
                self.site.update_object(resource, ns, name, obj, subresource=sub, dry_run=dry_run)
            )
        if method == "DELETE":
            options = await self._delete_options(request)
            result = self.site.delete_object(
                resource,
                ns,
                name,
                grace=options.get("gracePeriodSeconds"),
                propagation=options.get("propagationPolicy"),
                preconditions=options.get("preconditions"),
                dry_run=dry_run,
            )
            return json_response(result)
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    # ---- helpers ------------------------------------------------------------------------------
    async def _raw(self, request: web.Request) -> Any:
        text = await request.read()
        if not text:
            raise bad_request("the body of the request was empty")
        ctype = request.content_type
        if ctype in (
            "application/vnd.kubernetes.protobuf",
            "application/cbor",
            "application/apply-patch+cbor",
        ):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
            )
        if ctype in ("application/apply-patch+yaml", "application/yaml"):
            import yaml

            try:
                return yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise bad_request(f"error decoding YAML: {exc}") from exc
        try:
            return json.loads(text)
        except ValueError as exc:
            raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc

    async def _body(self, request: web.Request) -> Any:
        body = await self._raw(request)
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        return body

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        raw = await request.read()
        if raw.strip():
            try:
                options = dict(json.loads(raw) or {})
            except ValueError as exc:
                raise bad_request(f"invalid delete options: {exc}") from exc
        grace = _int(request.query.get("gracePeriodSeconds"), "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        if request.query.get("propagationPolicy"):
            options["propagationPolicy"] = request.query["propagationPolicy"]
        if options.get("orphanDependents") is True and not options.get("propagationPolicy"):
            options["propagationPolicy"] = "Orphan"
        if options.get("gracePeriodSeconds") is not None:
            options["gracePeriodSeconds"] = float(options["gracePeriodSeconds"])
        return options

    def _get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(resource, namespace if resource.namespaced else "", name)
        if obj is None:
            raise not_found(resource.group, resource.plural, name)
        return obj

    def _respond(
        self, request: web.Request, resource: Resource, obj: dict[str, Any]
    ) -> web.Response:
        if "as=Table" in request.headers.get("Accept", ""):
            return json_response(
                render_table(resource, [obj], str(self.store.resource_version), request.query)
            )
        return json_response(obj)

    def _patch(
        self,
        request: web.Request,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Any,
        sub: str | None,
    ) -> dict[str, Any]:
        current = self._get(resource, namespace, name)
        ctype = request.content_type
        if ctype == "application/json-patch+json":
            result = json_patch(current, patch)
        elif ctype == "application/merge-patch+json":
            result = merge_patch(current, patch)
        elif ctype == "application/strategic-merge-patch+json":
            result = strategic_merge_patch(current, patch)
        elif ctype == "application/apply-patch+yaml":
            result = strategic_merge_patch(current, patch)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json",
            )
        if not isinstance(result, dict):
            raise ApiError(422, "Invalid", "the patch did not produce an object")
        patched_rv = (result.get("metadata") or {}).get("resourceVersion")
        if isinstance(patch, dict) and not (patch.get("metadata") or {}).get("resourceVersion"):
            result.setdefault("metadata", {})["resourceVersion"] = current["metadata"][
                "resourceVersion"
            ]
        elif patched_rv is None:
            result.setdefault("metadata", {})["resourceVersion"] = current["metadata"][
                "resourceVersion"
            ]
        return result

    # ---- list and watch ---------------------------------------------------------------------------
    def _matcher(self, request: web.Request, resource: Resource) -> Any:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), resource.field_selectors)
        return lambda obj: labels(obj["metadata"].get("labels") or {}) and fields(obj)

    def list(self, request: web.Request, resource: Resource, namespace: str | None) -> web.Response:
        matches = self._matcher(request, resource)
        items = [o for o in self.store.items(resource, namespace) if matches(o)]
        rv = str(self.store.resource_version)
        limit = _int(request.query.get("limit"), "limit")
        start = 0
        token = request.query.get("continue")
        if token:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(token.encode()))["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise bad_request(
                    "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
                ) from exc
        metadata: dict[str, Any] = {"resourceVersion": rv}
        if start:
            items = items[start:]
        if limit and limit > 0 and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            metadata["continue"] = base64.urlsafe_b64encode(
                dumps({"v": "meta.k8s.io/v1", "rv": int(rv), "start": start + limit})
            ).decode()
            metadata["remainingItemCount"] = remaining
        if "as=Table" in request.headers.get("Accept", ""):
            table = render_table(resource, items, rv, request.query)
            table["metadata"] = metadata
            return json_response(table)
        body = {
            "kind": resource.list_kind,
            "apiVersion": resource.api_version,
            "metadata": metadata,
            "items": [
                {k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items
            ],
        }
        return json_response(body)

    async def _stream(self, request: web.Request, content_type: str) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"Content-Type": content_type, "Cache-Control": "no-cache, private"}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        return response

    async def watch(
        self, request: web.Request, resource: Resource, namespace: str | None
    ) -> web.StreamResponse:
        matches = self._matcher(request, resource)
        rv_param = request.query.get("resourceVersion", "")
        timeout = _int(request.query.get("timeoutSeconds"), "timeoutSeconds") or 1800
        bookmarks = _bool(request.query.get("allowWatchBookmarks"))
        initial: list[tuple[str, dict[str, Any], int]] = []
        error: ApiError | None = None
        if rv_param in ("", "0"):
            initial = [
                ("ADDED", o, int(o["metadata"]["resourceVersion"]))
                for o in self.store.items(resource, namespace)
                if matches(o)
            ]
        else:
            try:
                since = int(rv_param)
            except ValueError as exc:
                raise bad_request(f'invalid resource version "{rv_param}"') from exc
            probe = Watcher(resource, namespace, matches)
            try:
                for change in self.store.history_since(since):
                    event = probe.translate(change)
                    if event is not None:
                        initial.append((event[0], event[1], change.rv))
            except ApiError as exc:
                error = exc
        watcher = self.store.watch(resource, namespace, matches) if error is None else None
        response = await self._stream(request, "application/json")
        stream = self.site.faults.open_stream(request.path_qs, request.transport)
        as_table = "as=Table" in request.headers.get("Accept", "")

        def present(obj: dict[str, Any]) -> dict[str, Any]:
            if not as_table:
                return obj
            return render_table(resource, [obj], obj["metadata"]["resourceVersion"], request.query)

        last_rv = int(rv_param) if rv_param.isdigit() else self.store.resource_version
        try:
            if error is not None:
                body = error.status()
                await response.write(dumps({"type": "ERROR", "object": body}) + b"\n")
                return response
            assert watcher is not None
            for kind, obj, rv in initial:
                await response.write(dumps({"type": kind, "object": present(obj)}) + b"\n")
                last_rv = max(last_rv, rv)
            if self.site.faults.should_drop_new(stream):
                await asyncio.sleep(0.05)
                stream.drop()
                return response
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + self.site.bookmark_interval
            while not stream.dropped.is_set():
                now = time.monotonic()
                if now >= deadline:
                    break
                wait = deadline - now
                if bookmarks:
                    wait = min(wait, max(0.0, next_bookmark - now))
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
                try:
                    kind, obj, rv = await asyncio.wait_for(
                        watcher.queue.get(), timeout=min(wait, 1.0)
                    )
                except TimeoutError:
                    if bookmarks and time.monotonic() >= next_bookmark:
                        mark = {
                            "kind": resource.kind,
                            "apiVersion": resource.api_version,
                            "metadata": {
                                "resourceVersion": str(max(last_rv, self.store.resource_version))
                            },
                        }
                        await response.write(dumps({"type": "BOOKMARK", "object": mark}) + b"\n")
                        next_bookmark = time.monotonic() + self.site.bookmark_interval
                    continue
                if rv <= last_rv and rv_param not in ("", "0"):
                    continue
                last_rv = max(last_rv, rv)
                await response.write(dumps({"type": kind, "object": present(obj)}) + b"\n")
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            if watcher is not None:
                self.store.unwatch(watcher)
            self.site.faults.close_stream(stream)
        if not stream.dropped.is_set():
            try:
                await response.write_eof()
            except (ConnectionResetError, RuntimeError):
                pass
        return response

    def delete_collection(
        self, request: web.Request, resource: Resource, namespace: str | None
    ) -> web.Response:
        matches = self._matcher(request, resource)
        grace = _int(request.query.get("gracePeriodSeconds"), "gracePeriodSeconds")
        deleted = []
        for obj in [o for o in self.store.items(resource, namespace) if matches(o)]:
            meta = obj["metadata"]
            result = self.site.delete_object(
                resource,
                meta.get("namespace", ""),
                meta["name"],
                grace=float(grace) if grace is not None else None,
                propagation=request.query.get("propagationPolicy"),
            )
            deleted.append(result if result.get("kind") != "Status" else obj)
        return json_response(
            {
                "kind": resource.list_kind,
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted,
            }
        )

    # ---- scale ----------------------------------------------------------------------------------------
    async def scale(
        self, request: web.Request, resource: Resource, namespace: str, name: str
    ) -> web.Response:
        if resource.key not in (DEPLOYMENT.key, REPLICASET.key):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        obj = self._get(resource, namespace, name)
        if request.method in ("PUT", "PATCH"):
            raw = await self._raw(request)
            current = self._scale_view(obj)
            if request.method == "PUT":
                desired = raw
            elif request.content_type == "application/json-patch+json":
                desired = json_patch(current, raw)
            else:
                desired = merge_patch(current, raw)
            replicas = (desired.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid(
                    "Scale",
                    "autoscaling",
                    name,
                    [
                        field_invalid(
                            "spec.replicas", replicas, "must be greater than or equal to 0"
                        )
                    ],
                )
            updated = copy.deepcopy(obj)
            updated["spec"]["replicas"] = replicas
            obj = self.site.update_object(resource, namespace, name, updated)
        return json_response(self._scale_view(obj))

    @staticmethod
    def _scale_view(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": selector_to_string(obj["spec"].get("selector")),
            },
        }

    # ---- logs -------------------------------------------------------------------------------------------
    def _log_buffer(
        self, namespace: str, name: str, container: str | None, previous: bool
    ) -> LogBuffer:
        pod = self._get(POD, namespace, name)
        spec = pod["spec"]
        mains = [c["name"] for c in spec.get("containers") or []]
        inits = [c["name"] for c in spec.get("initContainers") or []]
        if container is None:
            if len(mains) != 1:
                message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(mains)}]"
                if inits:
                    message += f" or one of the init containers: [{' '.join(inits)}]"
                raise bad_request(message)
            container = mains[0]
        if container not in mains and container not in inits:
            raise bad_request(f"container {container} is not valid for pod {name}")
        runner = self.site.kubelet.pods.get(pod["metadata"]["uid"])
        runtime = runner.by_name.get(container) if runner else None
        if previous:
            if runtime is None or runtime.previous_logs is None:
                raise bad_request(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            return runtime.previous_logs
        if runtime is None or runtime.logs is None:
            reason = "ContainerCreating"
            if runtime is not None:
                reason = (runtime.state.get("waiting") or {}).get("reason", reason)
            if reason in ("ErrImagePull", "ImagePullBackOff"):
                raise bad_request(
                    f'container "{container}" in pod "{name}" is waiting to start: trying and failing to pull image'
                )
            if reason == "CreateContainerConfigError":
                raise bad_request(
                    f'container "{container}" in pod "{name}" is waiting to start: CreateContainerConfigError'
                )
            raise bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: {reason}'
            )
        return runtime.logs

    async def pod_log(self, request: web.Request, namespace: str, name: str) -> web.StreamResponse:
        query = request.query
        buffer = self._log_buffer(
            namespace, name, query.get("container") or None, _bool(query.get("previous"))
        )
        since_ns: int | None = None
        if query.get("sinceSeconds"):
            seconds = _int(query.get("sinceSeconds"), "sinceSeconds") or 0
            if seconds <= 0:
                raise ApiError(
                    422,
                    "Invalid",
                    f'PodLogOptions "{name}" is invalid: sinceSeconds: Invalid value: {seconds}: must be greater than 0',
                )
            since_ns = time.time_ns() - seconds * 1_000_000_000
        elif query.get("sinceTime"):
            try:
                since_ns = int(parse_rfc3339(query["sinceTime"]) * 1_000_000_000)
            except ValueError as exc:
                raise bad_request(str(exc)) from exc
        log_query = LogQuery(
            timestamps=_bool(query.get("timestamps")),
            tail_lines=_int(query.get("tailLines"), "tailLines"),
            since_ns=since_ns,
            limit_bytes=_int(query.get("limitBytes"), "limitBytes"),
        )
        index, lines = buffer.select(log_query)
        remaining = log_query.limit_bytes
        if not _bool(query.get("follow")):
            body = b"".join(render(lines, log_query.timestamps))
            if remaining is not None:
                body = body[:remaining]
            return web.Response(body=body, content_type="text/plain")
        response = await self._stream(request, "text/plain")
        stream = self.site.faults.open_stream(request.path_qs, request.transport)
        pod_uid = self._get(POD, namespace, name)["metadata"]["uid"]
        drop_new = self.site.faults.should_drop_new(stream)
        try:
            while True:
                if lines:
                    chunk = b"".join(render(lines, log_query.timestamps))
                    if remaining is not None:
                        chunk = chunk[:remaining]
                        remaining -= len(chunk)
                    await response.write(chunk)
                    if remaining is not None and remaining <= 0:
                        break
                if drop_new:
                    await asyncio.sleep(0.05)
                    stream.drop()
                if stream.dropped.is_set():
                    return response
                if buffer.closed:
                    index, lines = buffer.after(index)
                    if not lines:
                        break
                    continue
                waiter = asyncio.ensure_future(buffer.wait_change())
                dropped = asyncio.ensure_future(stream.dropped.wait())
                done, pending = await asyncio.wait(
                    {waiter, dropped}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()
                transport = request.transport
                if stream.dropped.is_set() or transport is None or transport.is_closing():
                    return response
                pod = self.store.get(POD, namespace, name)
                if pod is None or pod["metadata"]["uid"] != pod_uid:
                    index, lines = buffer.after(index)
                    if lines:
                        await response.write(b"".join(render(lines, log_query.timestamps)))
                    break
                index, lines = buffer.after(index)
        except (ConnectionResetError, RuntimeError):
            return response
        finally:
            self.site.faults.close_stream(stream)
        try:
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass
        return response


def build_api_app(site: Site) -> web.Application:
    api = Api(site)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", api.handle)
    return app
