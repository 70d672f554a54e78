"""Pod log lines: split, de-duplicate across reconnects, and pick out step results.

Pure code shared by the synchronous pod manager (``operators.ci.pod_manager``) and the
deferrable trigger (``operators.ci.triggers``), so both paths log every line once, in order.

The Kubernetes log API can only resume a stream with ``sinceSeconds`` (whole seconds, relative
to the server's clock), so a reconnect re-reads a window that overlaps what was already shown.
:class:`LogCursor` remembers the full RFC 3339 timestamp of the last line shown and how many
lines carried that same timestamp; lines read again are skipped, new ones pass.

A step reports what it produced by printing result lines on its standard output::

    ::sre-result:: {"kind": "junit", "encoding": "base64", "data": "..."}

:class:`ResultCollector` keeps those (bounded in size) and the log shows a short summary
instead of the payload. This channel works the same on any cluster: nothing is read from files
on the Airflow host.
"""

from __future__ import annotations

import json
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

RESULT_PREFIX = "::sre-result::"
KNOWN_RESULT_KINDS = frozenset({"image", "junit", "coverage", "findings", "sonarqube"})
MAX_RESULT_BYTES = 8 * 1024 * 1024
MAX_RESULTS_TOTAL_BYTES = 16 * 1024 * 1024
MAX_RESULTS = 32
# Records to the task log carry at most this many pod lines / bytes; a burst of output becomes a
# few records instead of one per line, which keeps a 100 MB log to seconds, not minutes.
BATCH_MAX_LINES = 256
BATCH_MAX_BYTES = 64 * 1024
# A single log line longer than this is logged in consecutive pieces, all of it kept.
MAX_RECORD_CHARS = 1024 * 1024
# Extra seconds re-read on a reconnect, for the rounding of sinceSeconds and clock skew.
RESUME_MARGIN_SECONDS = 2

_KIND_PEEK = re.compile(r'"kind"\s*:\s*"([A-Za-z0-9_-]{1,32})"')


class ResultError(ValueError):
    """A result line or payload that cannot be accepted; the message names the result kind."""


def parse_timestamp_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 timestamp as the kubelet writes it.

    Fractions may have 0 to 9 digits (the kubelet trims trailing zeros), so timestamps must be
    compared as numbers, never as strings.
    """
    return _TIMESTAMPS.parse(text)


class _TimestampParser:
    """RFC 3339 to integer nanoseconds, caching the whole-second part of the last timestamp."""

    def __init__(self) -> None:
        # One tuple, replaced whole, so concurrent readers never see a half-updated cache.
        self._last: tuple[str, int] = ("", 0)

    def parse(self, text: str) -> int | None:
        if len(text) < 20 or text[10] != "T":
            return None
        prefix = text[:19]
        cached_prefix, seconds = self._last
        if prefix != cached_prefix:
            try:
                moment = datetime.strptime(prefix, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
            except ValueError:
                return None
            seconds = int(moment.timestamp())
            self._last = (prefix, seconds)
        rest = text[19:]
        if rest == "Z":
            return seconds * 1_000_000_000
        if rest.endswith("Z") and rest.startswith("."):
            digits = rest[1:-1]
            if 0 < len(digits) <= 9 and digits.isdigit():
                return seconds * 1_000_000_000 + int(digits.ljust(9, "0"))
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        micros = int(moment.timestamp()) * 1_000_000 + moment.microsecond
        return micros * 1000


_TIMESTAMPS = _TimestampParser()


class LineSplitter:
    """Turn a byte stream into complete lines; a line may span any number of chunks."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """Return the lines completed by ``chunk`` (without their newline)."""
        if b"\n" not in chunk:
            if chunk:
                self._pending.append(chunk)
            return []
        parts = chunk.split(b"\n")
        if self._pending:
            self._pending.append(parts[0])
            parts[0] = b"".join(self._pending)
            self._pending = []
        tail = parts.pop()
        if tail:
            self._pending.append(tail)
        return parts

    def take_partial(self) -> bytes | None:
        """Return and forget the unterminated rest of the stream, if any."""
        if not self._pending:
            return None
        rest = b"".join(self._pending)
        self._pending = []
        return rest

    def reset(self) -> None:
        """Forget any unterminated rest (the stream broke; a re-read delivers it whole)."""
        self._pending = []


class LogCursor:
    """Where a log stream stands, so that a re-read window shows nothing twice.

    ``last_ns``/``last_text`` are the timestamp of the last line shown, ``count`` how many lines
    shown so far carried exactly that timestamp. Call :meth:`begin_pass` before each (re)read.
    """

    def __init__(self, last_text: str | None = None, count: int = 0) -> None:
        self.last_text = last_text
        self.last_ns = parse_timestamp_ns(last_text) if last_text else None
        self.count = count if self.last_ns is not None else 0
        self._seen_at_last = 0

    def begin_pass(self) -> None:
        self._seen_at_last = 0

    def admit(self, stamp_ns: int, stamp_text: str) -> bool:
        """Whether a line with this timestamp is new; records it if so."""
        last = self.last_ns
        if last is None or stamp_ns > last:
            self.last_ns, self.last_text = stamp_ns, stamp_text
            self.count = self._seen_at_last = 1
            return True
        if stamp_ns < last:
            return False
        self._seen_at_last += 1
        if self._seen_at_last > self.count:
            self.count = self._seen_at_last
            return True
        return False

    def since_seconds(self, now: float) -> int | None:
        """``sinceSeconds`` for a re-read that covers everything after the last line shown."""
        if self.last_ns is None:
            return None
        gap = now - self.last_ns / 1e9
        return max(1, math.ceil(gap) + RESUME_MARGIN_SECONDS)

    def to_dict(self) -> dict[str, Any]:
        return {"last_timestamp": self.last_text, "count": self.count}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LogCursor:
        if not data:
            return cls()
        return cls(data.get("last_timestamp"), int(data.get("count") or 0))


class ResultCollector:
    """Keep the ``::sre-result::`` lines of a step, bounded in count and size."""

    def __init__(
        self,
        max_result_bytes: int = MAX_RESULT_BYTES,
        max_total_bytes: int = MAX_RESULTS_TOTAL_BYTES,
    ) -> None:
        self.max_result_bytes = max_result_bytes
        self.max_total_bytes = max_total_bytes
        self.results: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._total = 0

    def offer(self, message: str) -> str | None:
        """If ``message`` is a result line, keep it and return what the log shows instead."""
        if not message.startswith(RESULT_PREFIX):
            return None
        body = message[len(RESULT_PREFIX) :].strip()
        peek = _KIND_PEEK.search(body[:512])
        kind = peek.group(1) if peek else "unknown"
        size = len(body)
        problem = self._check(kind, body, size)
        if problem is None:
            try:
                value = json.loads(body)
            except json.JSONDecodeError as err:
                problem = f"result kind={kind}: not valid JSON ({err.msg} at position {err.pos})"
            else:
                problem = self._accept(value, size)
        if problem is not None:
            self.errors.append(problem)
            return f"result refused: {problem}"
        payload = self.results[-1].get("data")
        shown = len(payload) if isinstance(payload, str) else size
        return f"result kind={kind} bytes={shown}"

    def _check(self, kind: str, body: str, size: int) -> str | None:
        if len(self.results) >= MAX_RESULTS:
            return f"result kind={kind}: more than {MAX_RESULTS} results from one step"
        if size > self.max_result_bytes:
            return f"result kind={kind}: {size} bytes is over the limit of {self.max_result_bytes}"
        if self._total + size > self.max_total_bytes:
            return f"result kind={kind}: results of this step exceed {self.max_total_bytes} bytes"
        return None

    def _accept(self, value: Any, size: int) -> str | None:
        if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
            return "result line must be a JSON object with a string 'kind'"
        kind = value["kind"]
        if kind not in KNOWN_RESULT_KINDS:
            return f"result kind={kind}: unknown kind; expected one of {sorted(KNOWN_RESULT_KINDS)}"
        self.results.append(value)
        self._total += size
        return None

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [result for result in self.results if result.get("kind") == kind]


class LogFollower:
    """One container's log: bytes in, log lines out, exactly once across reconnects.

    :param container: container name, used as the line prefix.
    :param collect_results: pick out result lines (the step's main container only).
    :param cursor: where an earlier reader stopped, to continue from there.
    :param tail_size: how many of the last plain lines to keep for failure messages.
    """

    def __init__(
        self,
        container: str,
        *,
        collect_results: bool = True,
        cursor: LogCursor | None = None,
        tail_size: int = 5,
    ) -> None:
        self.container = container
        self.prefix = f"[{container}] "
        self.cursor = cursor or LogCursor()
        self.collector = ResultCollector() if collect_results else None
        self.tail: deque[str] = deque(maxlen=tail_size)
        self.lines_shown = 0
        self.bytes_read = 0
        self._splitter = LineSplitter()

    def begin_pass(self) -> None:
        """Call before reading a (new) stream: the cursor counts the overlap from here."""
        self._splitter.reset()
        self.cursor.begin_pass()

    def feed(self, chunk: bytes) -> list[str]:
        """Lines of ``chunk`` to log (already prefixed), skipping any shown before."""
        self.bytes_read += len(chunk)
        out: list[str] = []
        for raw in self._splitter.feed(chunk):
            self._take(raw, out)
        return out

    def end_pass(self, *, complete: bool) -> list[str]:
        """Finish a stream; an unterminated last line is shown only if the stream is complete."""
        rest = self._splitter.take_partial()
        out: list[str] = []
        if rest is not None and complete:
            self._take(rest, out)
        return out

    def _take(self, raw: bytes, out: list[str]) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        space = raw.find(b" ")
        stamp_bytes = raw[:space] if space > 0 else raw
        stamp_text = stamp_bytes.decode("ascii", "replace")
        stamp_ns = parse_timestamp_ns(stamp_text)
        if stamp_ns is None:
            message = raw.decode("utf-8", "replace")
        else:
            if not self.cursor.admit(stamp_ns, stamp_text):
                return
            message = raw[space + 1 :].decode("utf-8", "replace") if space > 0 else ""
        self.lines_shown += 1
        if self.collector is not None:
            summary = self.collector.offer(message)
            if summary is not None:
                out.append(self.prefix + summary)
                return
        self.tail.append(message)
        out.append(self.prefix + message)


def batches(
    lines: Iterable[str], max_lines: int = BATCH_MAX_LINES, max_bytes: int = BATCH_MAX_BYTES
) -> Iterator[str]:
    """Group consecutive log lines into records of a bounded size, keeping their order.

    A line longer than :data:`MAX_RECORD_CHARS` is split into consecutive pieces.
    """
    group: list[str] = []
    size = 0
    for line in lines:
        if len(line) > MAX_RECORD_CHARS:
            if group:
                yield "\n".join(group)
                group, size = [], 0
            for start in range(0, len(line), MAX_RECORD_CHARS):
                yield line[start : start + MAX_RECORD_CHARS]
            continue
        if group and (len(group) >= max_lines or size + len(line) > max_bytes):
            yield "\n".join(group)
            group, size = [], 0
        group.append(line)
        size += len(line) + 1
    if group:
        yield "\n".join(group)


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on a single line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
