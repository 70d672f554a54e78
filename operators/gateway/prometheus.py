"""Read samples from the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class ExpositionError(ValueError):
    """A line of the exposition text could not be read."""


@dataclass(frozen=True)
class Sample:
    """One sample line: metric name, labels and value."""

    name: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def parse_exposition(text: str, names: frozenset[str] | None = None) -> Iterator[Sample]:
    """Yield the samples of ``text``; only those whose name is in ``names`` when given.

    Comment lines (``# HELP``, ``# TYPE``) and blank lines are skipped. A malformed sample line
    raises :class:`ExpositionError` with its line number.
    """
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name_end = _name_end(line)
        name = line[:name_end]
        if not name:
            raise ExpositionError(f"line {number}: no metric name in {raw!r}")
        if names is not None and name not in names:
            continue
        rest = line[name_end:]
        labels: dict[str, str] = {}
        if rest.startswith("{"):
            try:
                labels, consumed = _labels(rest)
            except ExpositionError as err:
                raise ExpositionError(f"line {number}: {err} in {raw!r}") from None
            rest = rest[consumed:]
        fields = rest.split()
        if not fields:
            raise ExpositionError(f"line {number}: no value in {raw!r}")
        try:
            value = _value(fields[0])
        except ValueError:
            raise ExpositionError(f"line {number}: value {fields[0]!r} is not a number") from None
        yield Sample(name=name, value=value, labels=labels)


def _name_end(line: str) -> int:
    for index, char in enumerate(line):
        if not (char.isalnum() or char in "_:"):
            return index
    return len(line)


def _value(text: str) -> float:
    lowered = text.lower()
    if lowered in ("+inf", "inf"):
        return math.inf
    if lowered == "-inf":
        return -math.inf
    return float(text)


def _labels(text: str) -> tuple[dict[str, str], int]:
    """Parse ``{a="1",b="x\\"y"}`` at the start of ``text``; return labels and characters used."""
    labels: dict[str, str] = {}
    index = 1
    length = len(text)
    while True:
        while index < length and text[index] in " \t,":
            index += 1
        if index >= length:
            raise ExpositionError("unterminated label set")
        if text[index] == "}":
            return labels, index + 1
        eq = text.find("=", index)
        if eq < 0:
            raise ExpositionError("label without '='")
        key = text[index:eq].strip()
        index = eq + 1
        if index >= length or text[index] != '"':
            raise ExpositionError(f"label {key!r} has no quoted value")
        index += 1
        chars: list[str] = []
        while True:
            if index >= length:
                raise ExpositionError(f"unterminated value of label {key!r}")
            char = text[index]
            if char == "\\" and index + 1 < length:
                chars.append(_ESCAPES.get(text[index + 1], "\\" + text[index + 1]))
                index += 2
                continue
            if char == '"':
                index += 1
                break
            chars.append(char)
            index += 1
        labels[key] = "".join(chars)
