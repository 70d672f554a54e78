"""Container logs kept as raw bytes with the time each line was read, like the kubelet's files."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sandbox.kube.meta import rfc3339_nano

# The kubelet stores lines longer than 16 KiB as partial entries but serves them joined, with one
# timestamp at the start of the line. The stand-in keeps a long line whole until its newline, up to
# this size, so a reader sees exactly what it would get from a kubelet.
PARTIAL_LINE_BYTES = 8 * 1024 * 1024


@dataclass
class LogQuery:
    """The options of a `log` request."""

    timestamps: bool = False
    tail_lines: int | None = None
    since_ns: int | None = None
    limit_bytes: int | None = None


class LogBuffer:
    """The log of one container instance: lines in arrival order, capped in total size."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.lines: list[tuple[int, bytes]] = []
        self.dropped = 0
        self.size = 0
        self.max_bytes = max_bytes
        self.closed = False
        self._partial = b""
        self._changed = asyncio.Event()

    def feed(self, data: bytes) -> None:
        """Add raw output; complete lines become entries, a long unfinished one is split."""
        ts = time.time_ns()
        data = self._partial + data
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            self._append(ts, data[start : end + 1])
            start = end + 1
        rest = data[start:]
        while len(rest) >= PARTIAL_LINE_BYTES:
            self._append(ts, rest[:PARTIAL_LINE_BYTES])
            rest = rest[PARTIAL_LINE_BYTES:]
        self._partial = rest
        self._notify()

    def close(self) -> None:
        if self._partial:
            self._append(time.time_ns(), self._partial)
            self._partial = b""
        self.closed = True
        self._notify()

    def _append(self, ts: int, line: bytes) -> None:
        self.lines.append((ts, line))
        self.size += len(line)
        while self.size > self.max_bytes and len(self.lines) > 1:
            _, old = self.lines.pop(0)
            self.size -= len(old)
            self.dropped += 1

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def select(self, query: LogQuery) -> tuple[int, list[tuple[int, bytes]]]:
        """Absolute index after the selection, and the selected lines."""
        lines = self.lines
        if query.tail_lines is not None:
            lines = lines[max(0, len(lines) - query.tail_lines) :] if query.tail_lines > 0 else []
        if query.since_ns is not None:
            lines = [entry for entry in lines if entry[0] >= query.since_ns]
        return self.dropped + len(self.lines), lines

    def after(self, index: int) -> tuple[int, list[tuple[int, bytes]]]:
        start = max(0, index - self.dropped)
        return self.dropped + len(self.lines), self.lines[start:]

    async def wait_change(self) -> None:
        await self._changed.wait()


def render(lines: list[tuple[int, bytes]], timestamps: bool) -> Iterator[bytes]:
    for ts, line in lines:
        if timestamps:
            yield rfc3339_nano(ts).encode() + b" " + line
        else:
            yield line
