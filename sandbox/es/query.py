"""The query DSL subset of the stand-in: compile a query, then match, sort and page documents.

Supported: ``match_all``, ``match_none``, ``match``, ``match_phrase``, ``term``, ``terms``,
``range``, ``exists``, ``wildcard``, ``prefix`` and ``bool`` (``must``, ``filter``, ``should``,
``must_not``, ``minimum_should_match``). ``text`` fields are analysed (see
:func:`sandbox.es.store.analyze`), ``keyword`` fields compare whole values, numbers and dates
compare as numbers. An unknown query type is a 400 ``parsing_exception``, as on a real node.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sandbox.es.store import (
    DATE_TYPES,
    NUMERIC_TYPES,
    Document,
    EsError,
    Index,
    analyze,
    keyword_value,
    parse_date,
    values_at,
)

MAX_RESULT_WINDOW = 10_000
DEFAULT_TRACK_TOTAL_HITS = 10_000


class Query:
    """A compiled query clause."""

    def matches(self, index: Index, doc: Document) -> bool:
        raise NotImplementedError

    def candidates(self, index: Index) -> set[int] | None:
        """Positions that may match (from keyword postings), or None when every document may."""
        return None


class MatchAll(Query):
    def matches(self, index: Index, doc: Document) -> bool:
        return True


class MatchNone(Query):
    def matches(self, index: Index, doc: Document) -> bool:
        return False

    def candidates(self, index: Index) -> set[int] | None:
        return set()


@dataclass
class FieldQuery(Query):
    field: str

    def values(self, doc: Document) -> list[Any]:
        path = self.field[: -len(".keyword")] if self.field.endswith(".keyword") else self.field
        return values_at(doc.source, path)

    def kind(self, index: Index, doc: Document | None = None) -> str | None:
        sample = None
        if doc is not None:
            found = self.values(doc)
            sample = found[0] if found else None
        return index.field_type(self.field, sample)


@dataclass
class Phrase(FieldQuery):
    text: str

    def matches(self, index: Index, doc: Document) -> bool:
        kind = self.kind(index, doc)
        if kind is None:
            return False
        if kind == "text":
            wanted = analyze(self.text)
            if not wanted:
                return False
            return any(_contains_run(analyze(str(v)), wanted) for v in self.values(doc))
        return any(_equal(kind, v, self.text) for v in self.values(doc))

    def candidates(self, index: Index) -> set[int] | None:
        if index.mapped_type(self.field) == "keyword":
            return set(index.postings(self.field).get(self.text, ()))
        return None


@dataclass
class Match(FieldQuery):
    text: str
    operator: str = "or"

    def matches(self, index: Index, doc: Document) -> bool:
        kind = self.kind(index, doc)
        if kind is None:
            return False
        if kind != "text":
            return any(_equal(kind, v, self.text) for v in self.values(doc))
        wanted = set(analyze(self.text))
        if not wanted:
            return False
        for value in self.values(doc):
            tokens = set(analyze(str(value)))
            if (wanted <= tokens) if self.operator == "and" else (wanted & tokens):
                return True
        return False


@dataclass
class Terms(FieldQuery):
    wanted: list[Any]

    def matches(self, index: Index, doc: Document) -> bool:
        kind = self.kind(index, doc)
        if kind is None:
            return False
        for value in self.values(doc):
            if kind == "text":
                tokens = analyze(str(value))
                if any(str(w) in tokens for w in self.wanted):
                    return True
            elif any(_equal(kind, value, w) for w in self.wanted):
                return True
        return False

    def candidates(self, index: Index) -> set[int] | None:
        if index.mapped_type(self.field) == "keyword":
            table = index.postings(self.field)
            found: set[int] = set()
            for wanted in self.wanted:
                found.update(table.get(keyword_value(wanted), ()))
            return found
        return None


@dataclass
class Range(FieldQuery):
    bounds: dict[str, Any]

    def matches(self, index: Index, doc: Document) -> bool:
        kind = self.kind(index, doc)
        if kind is None or kind == "text":
            return False
        for value in self.values(doc):
            actual = _comparable(kind, value)
            if actual is None:
                continue
            if all(
                _within(op, actual, _comparable(kind, bound)) for op, bound in self.bounds.items()
            ):
                return True
        return False


@dataclass
class Exists(FieldQuery):
    def matches(self, index: Index, doc: Document) -> bool:
        return bool(self.values(doc)) and self.kind(index, doc) is not None


@dataclass
class Pattern(FieldQuery):
    regex: re.Pattern[str]

    def matches(self, index: Index, doc: Document) -> bool:
        kind = self.kind(index, doc)
        if kind is None:
            return False
        for value in self.values(doc):
            pieces = analyze(str(value)) if kind == "text" else [keyword_value(value)]
            if any(self.regex.fullmatch(piece) for piece in pieces):
                return True
        return False


@dataclass
class Bool(Query):
    must: list[Query]
    filter: list[Query]
    should: list[Query]
    must_not: list[Query]
    minimum_should_match: int

    def matches(self, index: Index, doc: Document) -> bool:
        if not all(q.matches(index, doc) for q in self.must):
            return False
        if not all(q.matches(index, doc) for q in self.filter):
            return False
        if any(q.matches(index, doc) for q in self.must_not):
            return False
        if self.minimum_should_match:
            hits = sum(1 for q in self.should if q.matches(index, doc))
            return hits >= self.minimum_should_match
        return True

    def candidates(self, index: Index) -> set[int] | None:
        narrowed: set[int] | None = None
        for clause in (*self.must, *self.filter):
            found = clause.candidates(index)
            if found is not None:
                narrowed = found if narrowed is None else narrowed & found
        if (
            narrowed is None
            and self.should
            and self.minimum_should_match
            and not (self.must or self.filter)
        ):
            union: set[int] = set()
            for clause in self.should:
                found = clause.candidates(index)
                if found is None:
                    return None
                union |= found
            return union
        return narrowed


def compile_query(spec: Any) -> Query:
    """Compile a query DSL object; raises :class:`EsError` 400 on what the stand-in does not know."""
    if spec is None:
        return MatchAll()
    if not isinstance(spec, dict) or len(spec) != 1:
        raise EsError(
            400, "parsing_exception", "[_na] query malformed, must start with start_object"
        )
    kind, body = next(iter(spec.items()))
    if kind == "match_all":
        return MatchAll()
    if kind == "match_none":
        return MatchNone()
    if kind == "bool":
        return _compile_bool(body)
    if kind in ("match_phrase", "match", "term", "terms", "range", "wildcard", "prefix"):
        field, value = _single_field(kind, body)
        return _compile_field(kind, field, value)
    if kind == "exists":
        if not isinstance(body, dict) or "field" not in body:
            raise EsError(400, "parsing_exception", "[exists] must be provided with a [field]")
        return Exists(body["field"])
    raise EsError(400, "parsing_exception", f"unknown query [{kind}]", line=1, col=14)


def _single_field(kind: str, body: Any) -> tuple[str, Any]:
    if not isinstance(body, dict):
        raise EsError(
            400, "parsing_exception", f"[{kind}] query malformed, no start_object after query name"
        )
    fields = {k: v for k, v in body.items() if k not in ("boost", "_name")}
    if len(fields) != 1:
        raise EsError(
            400,
            "parsing_exception",
            f"[{kind}] query doesn't support multiple fields, found {sorted(fields)}",
        )
    return next(iter(fields.items()))


def _compile_field(kind: str, field: str, value: Any) -> Query:
    if kind in ("match_phrase", "match"):
        options = value if isinstance(value, dict) else {"query": value}
        text = str(options.get("query", ""))
        if kind == "match_phrase":
            return Phrase(field, text)
        return Match(field, text, str(options.get("operator", "or")).lower())
    if kind == "term":
        wanted = value.get("value") if isinstance(value, dict) else value
        return Terms(field, [wanted])
    if kind == "terms":
        if not isinstance(value, list):
            raise EsError(400, "parsing_exception", "[terms] query does not support lookups here")
        return Terms(field, value)
    if kind == "range":
        if not isinstance(value, dict):
            raise EsError(400, "parsing_exception", "[range] query malformed")
        bounds = {k: v for k, v in value.items() if k in ("gt", "gte", "lt", "lte")}
        for legacy, op in (("from", "gte"), ("to", "lte")):
            if value.get(legacy) is not None:
                bounds[op] = value[legacy]
        return Range(field, bounds)
    options = value if isinstance(value, dict) else {"value": value}
    raw = str(options.get("value", options.get("wildcard", "")))
    insensitive = bool(options.get("case_insensitive", False))
    if kind == "prefix":
        regex = re.escape(raw) + ".*"
    else:
        regex = _wildcard_regex(raw)
    return Pattern(
        field, re.compile(regex, re.IGNORECASE | re.DOTALL if insensitive else re.DOTALL)
    )


def _wildcard_regex(pattern: str) -> str:
    out = []
    escaped = False
    for char in pattern:
        if escaped:
            out.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
    return "".join(out)


def _compile_bool(body: Any) -> Bool:
    if not isinstance(body, dict):
        raise EsError(400, "parsing_exception", "[bool] query malformed")
    known = {"must", "filter", "should", "must_not", "minimum_should_match", "boost", "_name"}
    unknown = set(body) - known
    if unknown:
        raise EsError(
            400, "parsing_exception", f"[bool] query does not support [{sorted(unknown)[0]}]"
        )

    def clauses(name: str) -> list[Query]:
        raw = body.get(name, [])
        items = raw if isinstance(raw, list) else [raw]
        return [compile_query(item) for item in items]

    must, filters, should, must_not = (
        clauses("must"),
        clauses("filter"),
        clauses("should"),
        clauses("must_not"),
    )
    default_msm = 0 if (must or filters) else (1 if should else 0)
    msm = body.get("minimum_should_match", default_msm)
    return Bool(must, filters, should, must_not, int(msm))


def _contains_run(tokens: list[str], wanted: list[str]) -> bool:
    size = len(wanted)
    first = wanted[0]
    for start, token in enumerate(tokens):
        if token == first and tokens[start : start + size] == wanted:
            return True
    return False


def _comparable(kind: str, value: Any) -> Any:
    if kind in DATE_TYPES:
        return parse_date(value)
    if kind in NUMERIC_TYPES:
        if isinstance(value, bool):
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if kind == "boolean":
        return keyword_value(value)
    return keyword_value(value)


def _equal(kind: str, actual: Any, wanted: Any) -> bool:
    left, right = _comparable(kind, actual), _comparable(kind, wanted)
    return left is not None and left == right


def _within(op: str, actual: Any, bound: Any) -> bool:
    if bound is None:
        return False
    if op == "gt":
        return bool(actual > bound)
    if op == "gte":
        return bool(actual >= bound)
    if op == "lt":
        return bool(actual < bound)
    return bool(actual <= bound)


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool
    unmapped_type: str | None = None


def parse_sort(spec: Any) -> list[SortKey]:
    """Sort keys from the body or the ``sort`` URL parameter (``field:desc,other``)."""
    if spec is None:
        return []
    if isinstance(spec, str):
        items: list[Any] = []
        for part in spec.split(","):
            name, _, order = part.partition(":")
            items.append({name: order or "asc"} if order else name)
        spec = items
    if not isinstance(spec, list):
        spec = [spec]
    keys = []
    for item in spec:
        if isinstance(item, str):
            keys.append(SortKey(item, item == "_score"))
        elif isinstance(item, dict) and len(item) == 1:
            name, options = next(iter(item.items()))
            if isinstance(options, str):
                keys.append(SortKey(name, options.lower() == "desc"))
            elif isinstance(options, dict):
                order = str(options.get("order", "desc" if name == "_score" else "asc")).lower()
                keys.append(SortKey(name, order == "desc", options.get("unmapped_type")))
            else:
                raise EsError(400, "parsing_exception", f"malformed sort for [{name}]")
        else:
            raise EsError(400, "parsing_exception", "malformed sort")
    return keys


@dataclass
class Hit:
    index: Index
    position: int
    doc: Document
    sort: list[Any]


def sort_values(keys: list[SortKey], hit_index: Index, doc: Document) -> list[Any]:
    out: list[Any] = []
    for key in keys:
        if key.field == "_doc":
            out.append(doc.seq_no)
            continue
        if key.field == "_score":
            out.append(1.0)
            continue
        kind = hit_index.field_type(key.field) or key.unmapped_type
        path = key.field[: -len(".keyword")] if key.field.endswith(".keyword") else key.field
        raw = [_comparable(kind or "keyword", v) for v in values_at(doc.source, path)]
        present = [v for v in raw if v is not None]
        if not present:
            out.append(None)
            continue
        chosen = max(present) if key.descending else min(present)
        if isinstance(chosen, float) and chosen.is_integer() and kind not in ("double", "float"):
            chosen = int(chosen)
        out.append(chosen)
    return out


def check_sortable(keys: list[SortKey], indices: list[Index]) -> None:
    for key in keys:
        if key.field in ("_doc", "_score"):
            continue
        kinds = {index.field_type(key.field) for index in indices} - {None}
        if "text" in kinds:
            raise EsError(
                400,
                "illegal_argument_exception",
                "Text fields are not optimised for operations that require per-document field data "
                "like aggregations and sorting, so these operations are disabled by default. Please "
                f"use a keyword field instead. Alternatively, set fielddata=true on [{key.field}] in "
                "order to load field data by uninverting the inverted index. Note that this can use "
                "significant memory.",
            )
        if (
            not kinds
            and indices
            and key.unmapped_type is None
            and any(i.live_count for i in indices)
        ):
            raise EsError(
                400,
                "query_shard_exception",
                f"No mapping found for [{key.field}] in order to sort on",
            )


def order_hits(hits: list[Hit], keys: list[SortKey]) -> list[Hit]:
    """Stable multi-key sort; missing values sort last in either direction."""
    ordered = sorted(hits, key=lambda h: h.doc.seq_no)
    for position in range(len(keys) - 1, -1, -1):
        key = keys[position]
        present = [h for h in ordered if h.sort[position] is not None]
        missing = [h for h in ordered if h.sort[position] is None]
        present.sort(key=lambda h, p=position: h.sort[p], reverse=key.descending)  # type: ignore[misc]
        ordered = present + missing
    return ordered


def after(hit_sort: list[Any], cursor: list[Any], keys: list[SortKey]) -> bool:
    """True when a hit's sort values come strictly after the ``search_after`` cursor."""
    for value, mark, key in zip(hit_sort, cursor, keys, strict=False):
        if value is None or mark is None:
            if value is None and mark is None:
                continue
            return value is None
        both_numbers = isinstance(value, int | float) and isinstance(mark, int | float)
        left, right = (value, mark) if both_numbers else (str(value), str(mark))
        if left == right:
            continue
        return bool(left < right) if key.descending else bool(left > right)
    return False


def filter_source(
    source: dict[str, Any], includes: list[str], excludes: list[str]
) -> dict[str, Any]:
    """Apply ``_source`` includes/excludes (dotted paths, ``*`` wildcards)."""

    def walk(node: dict[str, Any], prefix: str, need: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            path = prefix + key
            if any(fnmatch.fnmatchcase(path, p) for p in excludes):
                continue
            hit = not need or any(fnmatch.fnmatchcase(path, p) for p in includes)
            if isinstance(value, dict):
                inner = walk(value, path + ".", need and not hit)
                if inner or hit:
                    out[key] = inner
            elif hit:
                out[key] = value
        return out

    return walk(source, "", bool(includes))


def source_filter(body_source: Any, params: dict[str, str]) -> tuple[bool, list[str], list[str]]:
    """(return source?, includes, excludes) from the body ``_source`` and the URL parameters."""
    enabled = True
    includes: list[str] = []
    excludes: list[str] = []
    if isinstance(body_source, bool):
        enabled = body_source
    elif isinstance(body_source, str):
        includes = [body_source]
    elif isinstance(body_source, list):
        includes = [str(p) for p in body_source]
    elif isinstance(body_source, dict):
        includes = _as_list(body_source.get("includes", body_source.get("include", [])))
        excludes = _as_list(body_source.get("excludes", body_source.get("exclude", [])))
    raw = params.get("_source")
    if raw is not None:
        if raw.lower() in ("false", "true"):
            enabled = raw.lower() == "true"
        else:
            includes = _split(raw)
    if "_source_includes" in params:
        includes = _split(params["_source_includes"])
    if "_source_excludes" in params:
        excludes = _split(params["_source_excludes"])
    return enabled, includes, excludes


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value or []]


def _split(value: str) -> list[str]:
    return [part for part in value.split(",") if part]


def run_search(
    indices: list[Index],
    body: dict[str, Any],
    params: dict[str, str],
    *,
    count_only: bool = False,
) -> dict[str, Any]:
    """Execute a search (or count) over ``indices`` and shape the response like Elasticsearch."""
    query = compile_query(body.get("query"))
    size = int(params.get("size", body.get("size", 10)))
    start = int(params.get("from", body.get("from", 0)))
    if size < 0 or start < 0:
        raise EsError(400, "illegal_argument_exception", "[from] and [size] must be positive")
    if not count_only and start + size > MAX_RESULT_WINDOW:
        raise EsError(
            400,
            "illegal_argument_exception",
            f"Result window is too large, from + size must be less than or equal to: "
            f"[{MAX_RESULT_WINDOW}] but was [{start + size}]. See the scroll api for a more efficient "
            "way to request large data sets. This limit can be set by changing the "
            "[index.max_result_window] index level setting.",
        )
    keys = parse_sort(params.get("sort") or body.get("sort"))
    if not count_only:
        check_sortable(keys, indices)
    matched = list(_matching(indices, query, keys))
    shards = {"total": len(indices), "successful": len(indices), "skipped": 0, "failed": 0}
    if count_only:
        return {"count": len(matched), "_shards": shards}
    ordered = order_hits(matched, keys) if keys else sorted(matched, key=lambda h: h.doc.seq_no)
    cursor = body.get("search_after")
    if cursor is not None:
        if not keys:
            raise EsError(
                400, "illegal_argument_exception", "Sort must contain at least one field."
            )
        if not isinstance(cursor, list) or len(cursor) != len(keys):
            raise EsError(
                400,
                "illegal_argument_exception",
                f"search_after has {len(cursor) if isinstance(cursor, list) else 0} value(s) but sort has {len(keys)}.",
            )
        if start:
            raise EsError(
                400,
                "illegal_argument_exception",
                "[from] parameter must be set to 0 when [search_after] is used.",
            )
        ordered = [hit for hit in ordered if after(hit.sort, cursor, keys)]
    collapse = body.get("collapse")
    if isinstance(collapse, dict) and "field" in collapse:
        ordered = _collapse(ordered, str(collapse["field"]))
    page = ordered[start : start + size]
    enabled, includes, excludes = source_filter(body.get("_source"), params)
    hits = [_render_hit(hit, keys, enabled, includes, excludes, collapse) for hit in page]
    response: dict[str, Any] = {
        "took": 1,
        "timed_out": False,
        "_shards": shards,
        "hits": {"max_score": None if keys else (1.0 if hits else None), "hits": hits},
    }
    total = _total(len(matched), params.get("track_total_hits", body.get("track_total_hits")))
    if total is not None:
        response["hits"]["total"] = total
    return response


def _matching(indices: Iterable[Index], query: Query, keys: list[SortKey]) -> Iterable[Hit]:
    for index in indices:
        positions = query.candidates(index)
        if positions is None:
            pairs: Iterable[tuple[int, Document | None]] = enumerate(index.docs)
        else:
            pairs = ((p, index.docs[p]) for p in sorted(positions))
        for position, doc in pairs:
            if doc is not None and query.matches(index, doc):
                yield Hit(index, position, doc, sort_values(keys, index, doc))


def _collapse(hits: list[Hit], field: str) -> list[Hit]:
    seen: set[str] = set()
    kept = []
    for hit in hits:
        values = values_at(hit.doc.source, field.removesuffix(".keyword"))
        marker = keyword_value(values[0]) if values else "\x00missing"
        if marker in seen:
            continue
        seen.add(marker)
        kept.append(hit)
    return kept


def _render_hit(
    hit: Hit,
    keys: list[SortKey],
    enabled: bool,
    includes: list[str],
    excludes: list[str],
    collapse: Any,
) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "_index": hit.index.name,
        "_id": hit.doc.doc_id,
        "_score": None if keys else 1.0,
    }
    if enabled:
        source = hit.doc.source
        rendered["_source"] = (
            filter_source(source, includes, excludes) if (includes or excludes) else source
        )
    if keys:
        rendered["sort"] = hit.sort
    if isinstance(collapse, dict) and "field" in collapse:
        field = str(collapse["field"])
        rendered["fields"] = {field: values_at(hit.doc.source, field.removesuffix(".keyword"))[:1]}
    return rendered


def _total(count: int, track: Any) -> dict[str, Any] | None:
    if isinstance(track, str):
        track = {"true": True, "false": False}.get(track.lower(), track)
    if track is False:
        return None
    if track is True:
        return {"value": count, "relation": "eq"}
    limit = int(track) if track is not None else DEFAULT_TRACK_TOTAL_HITS
    if count > limit:
        return {"value": limit, "relation": "gte"}
    return {"value": count, "relation": "eq"}
