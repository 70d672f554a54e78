"""Indices, documents, mappings and index templates of the Elasticsearch stand-in.

Field types follow the index mapping (from the request that created the index, or from the
highest-priority composable template whose ``index_patterns`` match its name). Unmapped fields
behave like dynamic mapping: strings are ``text`` with a ``.keyword`` sub-field, numbers are
numbers, unless the mapping says ``"dynamic": false``, which leaves them unsearchable (kept in
``_source`` only), as on a real cluster.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

NUMERIC_TYPES = {
    "long",
    "integer",
    "short",
    "byte",
    "double",
    "float",
    "half_float",
    "unsigned_long",
}
INTEGER_TYPES = {"long", "integer", "short", "byte", "unsigned_long"}
DATE_TYPES = {"date", "date_nanos"}

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_SYMBOL = "\u2600-\u27bf\U0001f000-\U0001faff"
_TOKEN = re.compile(rf"[{_CJK}]|[{_SYMBOL}]|[^\W{_CJK}]+(?:[.'][^\W{_CJK}]+)*")
_INVALID_INDEX_CHARS = set('\\/*?"<>| ,#:')
_NOW = re.compile(r"^now(?:([+-])(\d+)([smhdwMy]))?(?:/[smhdwMy])?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}


class EsError(Exception):
    """An error answered the way Elasticsearch shapes it: status, type and reason."""

    def __init__(self, status: int, error_type: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.extra = extra

    def body(self) -> dict[str, Any]:
        cause = {"type": self.error_type, "reason": self.reason, **self.extra}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def analyze(text: str) -> list[str]:
    """Tokens of ``text`` roughly as the standard analyzer makes them (lower-cased words, CJK by character)."""
    return _TOKEN.findall(text.lower())


def parse_date(value: Any) -> float | None:
    """Epoch milliseconds of an ISO-8601 string, ``now``-style date math or an epoch number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    now = _NOW.match(text)
    if now:
        millis = time.time() * 1000
        if now.group(1):
            delta = int(now.group(2)) * _UNIT_SECONDS[now.group(3)] * 1000
            millis += delta if now.group(1) == "+" else -delta
        return millis
    if text.isdigit():
        return float(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() * 1000


def values_at(source: Any, path: str) -> list[Any]:
    """Every scalar value at the dotted ``path`` of a document (arrays flattened)."""
    if not isinstance(source, dict):
        return []
    if path in source:
        return _flatten(source[path])
    head, sep, rest = path.partition(".")
    while sep:
        if head in source:
            found = (
                values_at(source[head], rest)
                if not isinstance(source[head], list)
                else [value for item in source[head] for value in values_at(item, rest)]
            )
            if found:
                return found
        more_head, sep, rest = rest.partition(".")
        head = f"{head}.{more_head}"
    return []


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [item for element in value for item in _flatten(element)]
    if value is None:
        return []
    return [value]


@dataclass
class Document:
    """One stored document: its id, its source and its sequence number."""

    doc_id: str
    source: dict[str, Any]
    seq_no: int
    version: int = 1


@dataclass
class Index:
    """One index: mapping, settings and documents in write order."""

    name: str
    mappings: dict[str, Any]
    settings: dict[str, Any]
    created: float = field(default_factory=time.time)
    docs: list[Document | None] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)
    _postings: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @property
    def dynamic(self) -> bool:
        return str(self.mappings.get("dynamic", "true")).lower() not in ("false", "strict")

    @property
    def live_count(self) -> int:
        return len(self.ids)

    def live(self) -> Iterator[tuple[int, Document]]:
        for position, doc in enumerate(self.docs):
            if doc is not None:
                yield position, doc

    def mapped_type(self, path: str) -> str | None:
        """The mapped type of ``path`` (``text``, ``keyword``, ``long``...), or None if unmapped."""
        node: dict[str, Any] | None = {"properties": self.mappings.get("properties", {})}
        parts = path.split(".")
        for index, part in enumerate(parts):
            if node is None:
                return None
            properties = node.get("properties", {})
            if part in properties:
                node = properties[part]
                continue
            fields = node.get("fields", {})
            if part in fields and index == len(parts) - 1:
                node = fields[part]
                continue
            joined = ".".join(parts[index:])
            if joined in properties:
                node = properties[joined]
                break
            return None
        if node is None:
            return None
        if "type" in node:
            return str(node["type"])
        return "object" if "properties" in node or node.get("enabled") is False else None

    def field_type(self, path: str, sample: Any = None) -> str | None:
        """Mapped type, else the dynamic type a value would get, else None (not searchable)."""
        mapped = self.mapped_type(path)
        if mapped is not None:
            return mapped
        if not self.dynamic:
            return None
        if path.endswith(".keyword") and self.mapped_type(path[: -len(".keyword")]) is None:
            return "keyword"
        if sample is None:
            sample = self._first_value(path)
        if sample is None:
            return None
        if isinstance(sample, bool):
            return "boolean"
        if isinstance(sample, int):
            return "long"
        if isinstance(sample, float):
            return "double"
        return "text"

    def _first_value(self, path: str) -> Any:
        lookup = path[: -len(".keyword")] if path.endswith(".keyword") else path
        for _, doc in self.live():
            found = values_at(doc.source, lookup)
            if found:
                return found[0]
        return None

    def postings(self, path: str) -> dict[str, list[int]]:
        """Keyword value -> positions, built on first use and dropped on every write."""
        cached = self._postings.get(path)
        if cached is not None:
            return cached
        lookup = path[: -len(".keyword")] if path.endswith(".keyword") else path
        table: dict[str, list[int]] = {}
        for position, doc in self.live():
            for value in values_at(doc.source, lookup):
                table.setdefault(keyword_value(value), []).append(position)
        self._postings[path] = table
        return table

    def put(self, doc_id: str, source: dict[str, Any], seq_no: int, *, create_only: bool) -> str:
        """Store a document; returns ``created`` or ``updated``."""
        self._check_types(doc_id, source)
        self._postings.clear()
        existing = self.ids.get(doc_id)
        if existing is not None:
            if create_only:
                raise EsError(
                    409,
                    "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, document already exists (current version [1])",
                    index=self.name,
                )
            previous = self.docs[existing]
            version = previous.version + 1 if previous is not None else 1
            self.docs[existing] = None
            self.ids[doc_id] = len(self.docs)
            self.docs.append(Document(doc_id, source, seq_no, version))
            return "updated"
        self.ids[doc_id] = len(self.docs)
        self.docs.append(Document(doc_id, source, seq_no))
        return "created"

    def delete(self, doc_id: str) -> bool:
        position = self.ids.pop(doc_id, None)
        if position is None:
            return False
        self.docs[position] = None
        self._postings.clear()
        return True

    def _check_types(self, doc_id: str, source: dict[str, Any]) -> None:
        for path, kind in _typed_paths(self.mappings.get("properties", {})):
            for value in values_at(source, path):
                if not _fits(kind, value):
                    raise EsError(
                        400,
                        "document_parsing_exception",
                        f"[1:1] failed to parse field [{path}] of type [{kind}] in document with id "
                        f"'{doc_id}'. Preview of field's value: '{str(value)[:100]}'",
                    )


def keyword_value(value: Any) -> str:
    """How a scalar is indexed in a keyword field."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _typed_paths(properties: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if not isinstance(spec, dict):
            continue
        kind = spec.get("type")
        if kind in NUMERIC_TYPES or kind in DATE_TYPES or kind == "boolean" or kind == "keyword":
            yield path, str(kind)
        if "properties" in spec:
            yield from _typed_paths(spec["properties"], f"{path}.")


def _fits(kind: str, value: Any) -> bool:
    if kind == "keyword":
        return not isinstance(value, dict)
    if kind == "boolean":
        return isinstance(value, bool) or value in ("true", "false", "")
    if kind in DATE_TYPES:
        return parse_date(value) is not None
    if isinstance(value, bool) or isinstance(value, dict):
        return False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return kind not in INTEGER_TYPES or number == int(number)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _flat_settings(settings: dict[str, Any]) -> dict[str, Any]:
    index_part = settings.get("index", {}) if isinstance(settings.get("index"), dict) else {}
    flat = {k: v for k, v in settings.items() if k != "index"}
    flat.update(index_part)
    return {k.removeprefix("index."): v for k, v in flat.items()}


class Store:
    """All indices and templates of one stand-in node, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.indices: dict[str, Index] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self._seq = itertools.count()

    def reset(self) -> None:
        with self.lock:
            self.indices.clear()
            self.templates.clear()

    def put_template(self, name: str, body: dict[str, Any]) -> None:
        patterns = body.get("index_patterns")
        if isinstance(patterns, str):
            patterns = [patterns]
        if not patterns or not all(isinstance(p, str) for p in patterns):
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: index patterns are missing;",
            )
        with self.lock:
            for other_name, other in self.templates.items():
                if other_name == name:
                    continue
                same_priority = other.get("priority", 0) == body.get("priority", 0)
                overlap = set(other["index_patterns"]) & set(patterns)
                if same_priority and overlap:
                    raise EsError(
                        400,
                        "illegal_argument_exception",
                        f"index template [{name}] has index patterns {patterns} matching patterns from "
                        f"existing templates [{other_name}] with patterns ({other_name} => "
                        f"{other['index_patterns']}) that have the same priority [{body.get('priority', 0)}], "
                        "multiple index templates may not match during index creation, please use a "
                        "different priority",
                    )
            self.templates[name] = {**body, "index_patterns": list(patterns)}

    def template_for(self, index_name: str) -> dict[str, Any] | None:
        best: tuple[int, dict[str, Any]] | None = None
        for template in self.templates.values():
            if any(fnmatch.fnmatchcase(index_name, p) for p in template["index_patterns"]):
                priority = int(template.get("priority", 0))
                if best is None or priority > best[0]:
                    best = (priority, template)
        return best[1] if best else None

    def create_index(self, name: str, body: dict[str, Any] | None = None) -> Index:
        _check_index_name(name)
        body = body or {}
        with self.lock:
            if name in self.indices:
                raise EsError(
                    400,
                    "resource_already_exists_exception",
                    f"index [{name}/{uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:22]}] already exists",
                    index=name,
                )
            template = (self.template_for(name) or {}).get("template", {})
            mappings = _merge(template.get("mappings", {}), body.get("mappings", {}))
            settings = _merge(
                _flat_settings(template.get("settings", {})),
                _flat_settings(body.get("settings", {})),
            )
            index = Index(name=name, mappings=mappings, settings=settings)
            self.indices[name] = index
            return index

    def get_or_create(self, name: str) -> Index:
        with self.lock:
            existing = self.indices.get(name)
            return existing if existing is not None else self.create_index(name)

    def resolve(
        self, expression: str, *, ignore_unavailable: bool = False, allow_no_indices: bool = True
    ) -> list[Index]:
        """Indices named by a comma list of names, wildcards, ``_all`` and ``-exclusions``."""
        with self.lock:
            chosen: dict[str, Index] = {}
            for raw in _split_names(expression):
                exclude = raw.startswith("-") and bool(chosen)
                pattern = raw[1:] if exclude else raw
                if pattern in ("_all", "*"):
                    matched = list(self.indices)
                elif any(ch in pattern for ch in "*?"):
                    matched = [n for n in self.indices if fnmatch.fnmatchcase(n, pattern)]
                else:
                    if pattern not in self.indices:
                        if exclude or ignore_unavailable:
                            continue
                        raise EsError(
                            404,
                            "index_not_found_exception",
                            f"no such index [{pattern}]",
                            index=pattern,
                            **{"resource.type": "index_or_alias", "resource.id": pattern},
                        )
                    matched = [pattern]
                for name in matched:
                    if exclude:
                        chosen.pop(name, None)
                    else:
                        chosen[name] = self.indices[name]
            if not chosen and not allow_no_indices:
                raise EsError(404, "index_not_found_exception", f"no such index [{expression}]")
            return [chosen[name] for name in sorted(chosen)]

    def delete_indices(self, expression: str) -> list[str]:
        with self.lock:
            doomed = [index.name for index in self.resolve(expression, allow_no_indices=True)]
            for name in doomed:
                del self.indices[name]
            return doomed

    def next_seq(self) -> int:
        return next(self._seq)

    def index_document(
        self, index_name: str, source: dict[str, Any], doc_id: str | None, *, create_only: bool
    ) -> tuple[Index, str, str]:
        """Store one document, creating its index on first write; returns (index, id, result)."""
        if not isinstance(source, dict):
            raise EsError(
                400, "document_parsing_exception", "[1:1] the document must be a JSON object"
            )
        with self.lock:
            index = self.get_or_create(index_name)
            chosen_id = doc_id or uuid.uuid4().hex[:20]
            result = index.put(chosen_id, source, self.next_seq(), create_only=create_only)
            return index, chosen_id, result

    def all_documents(self, expression: str = "*") -> Iterable[tuple[Index, Document]]:
        with self.lock:
            for index in self.resolve(expression, ignore_unavailable=True):
                for _, doc in index.live():
                    yield index, doc


def _split_names(expression: str) -> list[str]:
    return [part.strip() for part in expression.split(",") if part.strip()]


def _check_index_name(name: str) -> None:
    problem = None
    if not name or name in (".", ".."):
        problem = "must not be '.' or '..'"
    elif name != name.lower():
        problem = "must be lowercase"
    elif name[0] in "-_+":
        problem = "must not start with '_', '-', or '+'"
    elif set(name) & _INVALID_INDEX_CHARS:
        problem = 'must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?]'
    elif len(name.encode("utf-8")) > 255:
        problem = "index name is too long"
    if problem:
        raise EsError(
            400,
            "invalid_index_name_exception",
            f"Invalid index name [{name}], {problem}",
            index=name,
        )
