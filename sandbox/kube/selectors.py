"""Label and field selectors, parsed and matched as the API server does."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.kube.meta import ApiError, bad_request

Matcher = Callable[[Mapping[str, Any]], bool]

_SET_TERM = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s+\((.*)\)\s*$")
_EQ_TERM = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")
_CMP_TERM = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(<|>)\s*(-?[0-9]+)\s*$")
_EXISTS_TERM = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*$")


def _split_terms(selector: str) -> list[str]:
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


def parse_label_selector(selector: str | None) -> Callable[[Mapping[str, str]], bool]:
    """Compile a label selector string; an unparsable one is a 400 like the server's."""
    if not selector or not selector.strip():
        return lambda labels: True
    checks: list[Callable[[Mapping[str, str]], bool]] = []
    for term in _split_terms(selector):
        checks.append(_compile_label_term(term))
    return lambda labels: all(check(labels) for check in checks)


def _compile_label_term(term: str) -> Callable[[Mapping[str, str]], bool]:
    if match := _SET_TERM.match(term):
        _, key, op, raw = match.groups()
        values = {v.strip() for v in raw.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQ_TERM.match(term):
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: key in labels and labels[key] == value
    if match := _CMP_TERM.match(term):
        key, op, value = match.groups()
        bound = int(value)

        def compare(labels: Mapping[str, str]) -> bool:
            try:
                number = int(labels[key])
            except (KeyError, ValueError):
                return False
            return number > bound if op == ">" else number < bound

        return compare
    if match := _EXISTS_TERM.match(term):
        negate, key = match.groups()
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise bad_request(
        f"unable to parse requirement: found '{term.strip()}', expected: in, notin, =, ==, !=, gt, lt"
    )


def selector_from_match(selector: Mapping[str, Any] | None) -> Callable[[Mapping[str, str]], bool]:
    """Compile a LabelSelector object (matchLabels and matchExpressions)."""
    if not selector:
        return lambda labels: False
    match_labels = dict(selector.get("matchLabels") or {})
    expressions = list(selector.get("matchExpressions") or [])

    def matches(labels: Mapping[str, str]) -> bool:
        for key, value in match_labels.items():
            if labels.get(key) != value:
                return False
        for expr in expressions:
            key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
            if op == "In" and labels.get(key) not in values:
                return False
            if op == "NotIn" and key in labels and labels[key] in values:
                return False
            if op == "Exists" and key not in labels:
                return False
            if op == "DoesNotExist" and key in labels:
                return False
        return True

    return matches


def selector_to_string(selector: Mapping[str, Any] | None) -> str:
    """The string form of a LabelSelector, as a Scale's status.selector shows it."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key = expr.get("operator"), expr.get("key")
        values = ",".join(sorted(expr.get("values") or []))
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key}.get(
                op, f"!{key}"
            )
        )
    return ",".join(parts)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    if path == "source":
        source = obj.get("source") or {}
        value: Any = source.get("component", "")
    else:
        value = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
            if value is None:
                break
    if path == "status.podIPs":
        value = ",".join(ip.get("ip", "") for ip in (value or []))
    if path == "status.successful":
        value = (obj.get("status") or {}).get("succeeded", 0)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def parse_field_selector(selector: str | None, supported: tuple[str, ...]) -> Matcher:
    """Compile a field selector limited to the fields the resource supports."""
    if not selector or not selector.strip():
        return lambda obj: True
    checks: list[tuple[str, bool, str]] = []
    for term in selector.split(","):
        if not term.strip():
            continue
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not match:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{term}'")
        path, op, value = match.groups()
        allowed = ("metadata.name", "metadata.namespace", *supported)
        if path not in allowed:
            raise ApiError(400, "BadRequest", f"field label not supported: {path}")
        checks.append((path, op == "!=", value))

    def matches(obj: Mapping[str, Any]) -> bool:
        for path, negate, value in checks:
            actual = _field_value(obj, path)
            if (actual == value) == negate:
                return False
        return True

    return matches
