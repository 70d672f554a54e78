"""The object store: one resourceVersion counter, a bounded event history and watchers.

Everything runs on the site's event loop, so no locking is needed. Stored objects are never
changed in place: writers build a new dict and hand it to `create`/`update`, so an object held
by a watch event stays as it was when the event happened.
"""

from __future__ import annotations

import asyncio
import collections
import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sandbox.kube.meta import ApiError, already_exists, new_uid, not_found, now_rfc3339
from sandbox.kube.resources import BY_KEY, Resource

Obj = dict[str, Any]


@dataclass(frozen=True)
class Change:
    """One write, as watches and controllers see it."""

    rv: int
    resource: Resource
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None


class Watcher:
    """An open watch: a namespace, a predicate and a queue of changes."""

    def __init__(
        self, resource: Resource, namespace: str | None, predicate: Callable[[Obj], bool]
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.predicate = predicate
        self.queue: asyncio.Queue[tuple[str, Obj, int]] = asyncio.Queue()

    def translate(self, change: Change) -> tuple[str, Obj] | None:
        """The watch event a change means for this watcher, honouring selector transitions."""
        if change.resource.key != self.resource.key:
            return None
        ns = change.obj.get("metadata", {}).get("namespace")
        if self.namespace is not None and ns != self.namespace:
            return None
        now = self.predicate(change.obj)
        if change.type == "ADDED":
            return ("ADDED", change.obj) if now else None
        if change.type == "DELETED":
            return ("DELETED", change.obj) if now else None
        was = change.old is not None and self.predicate(change.old)
        if was and now:
            return ("MODIFIED", change.obj)
        if now:
            return ("ADDED", change.obj)
        if was:
            return ("DELETED", change.obj)
        return None


class Store:
    """All objects of one site."""

    def __init__(self, history_size: int = 1000) -> None:
        self._rv = 1
        self._objects: dict[str, dict[tuple[str, str], Obj]] = collections.defaultdict(dict)
        self._history: collections.deque[Change] = collections.deque(maxlen=max(1, history_size))
        self._compacted = 0
        self._watchers: set[Watcher] = set()
        self._listeners: list[Callable[[Change], None]] = []

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted_rv(self) -> int:
        """Newest resourceVersion no longer in the history; older watches get 410."""
        return self._compacted

    def add_listener(self, listener: Callable[[Change], None]) -> None:
        self._listeners.append(listener)

    def get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        return self._objects[resource.key].get((namespace, name))

    def items(self, resource: Resource, namespace: str | None = None) -> list[Obj]:
        objs = self._objects[resource.key]
        if namespace is None:
            return [objs[k] for k in sorted(objs)]
        return [objs[k] for k in sorted(objs) if k[0] == namespace]

    def _record(self, resource: Resource, kind: str, obj: Obj, old: Obj | None) -> Change:
        change = Change(self._rv, resource, kind, obj, old)
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        self._history.append(change)
        for watcher in list(self._watchers):
            event = watcher.translate(change)
            if event is not None:
                watcher.queue.put_nowait((event[0], event[1], change.rv))
        for listener in self._listeners:
            listener(change)
        return change

    def _stamp(self, resource: Resource, obj: Obj) -> Obj:
        self._rv += 1
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        obj["metadata"]["resourceVersion"] = str(self._rv)
        return obj

    def create(self, resource: Resource, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", "") if resource.namespaced else "", meta["name"])
        if key in self._objects[resource.key]:
            raise already_exists(resource.group, resource.plural, meta["name"])
        meta.setdefault("uid", new_uid())
        meta.setdefault("creationTimestamp", now_rfc3339())
        obj = self._stamp(resource, obj)
        self._objects[resource.key][key] = obj
        self._record(resource, "ADDED", obj, None)
        return obj

    def update(self, resource: Resource, obj: Obj) -> Obj:
        meta = obj["metadata"]
        key = (meta.get("namespace", "") if resource.namespaced else "", meta["name"])
        old = self._objects[resource.key].get(key)
        if old is None:
            raise not_found(resource.group, resource.plural, meta["name"])
        obj = self._stamp(resource, obj)
        self._objects[resource.key][key] = obj
        self._record(resource, "MODIFIED", obj, old)
        return obj

    def delete(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        key = (namespace if resource.namespaced else "", name)
        old = self._objects[resource.key].pop(key, None)
        if old is None:
            return None
        obj = copy.deepcopy(old)
        obj = self._stamp(resource, obj)
        self._record(resource, "DELETED", obj, old)
        return obj

    def history_since(self, rv: int) -> Iterable[Change]:
        if rv < self._compacted:
            raise ApiError(
                410,
                "Expired",
                f"too old resource version: {rv} ({self._compacted + 1})",
            )
        return [c for c in self._history if c.rv > rv]

    def watch(
        self, resource: Resource, namespace: str | None, predicate: Callable[[Obj], bool]
    ) -> Watcher:
        watcher = Watcher(resource, namespace, predicate)
        self._watchers.add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def all_objects(self) -> Iterable[tuple[Resource, Obj]]:
        for key, objs in self._objects.items():
            for obj in objs.values():
                yield BY_KEY[key], obj
