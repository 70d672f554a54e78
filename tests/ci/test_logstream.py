"""The pure log-stream parts: line splitting, exactly-once across re-reads, result lines."""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.ci.logstream import (
    MAX_RECORD_CHARS,
    LineSplitter,
    LogCursor,
    LogFollower,
    ResultCollector,
    batches,
    parse_timestamp_ns,
)


def stamp(second: int, nanos: int) -> str:
    """A kubelet timestamp: RFC3339Nano with trailing zeros of the fraction trimmed."""
    fraction = f"{nanos:09d}".rstrip("0")
    return f"2026-12-04T10:00:{second:02d}" + (f".{fraction}" if fraction else "") + "Z"


def render(entries: list[tuple[str, bytes]]) -> bytes:
    return b"".join(ts.encode() + b" " + line + b"\n" for ts, line in entries)


def test_timestamps_compare_as_numbers_not_strings():
    assert "2026-12-04T10:00:05.1Z" > "2026-12-04T10:00:05.12Z"  # as strings: the wrong order
    assert parse_timestamp_ns("2026-12-04T10:00:05.1Z") < parse_timestamp_ns(
        "2026-12-04T10:00:05.12Z"
    )
    assert parse_timestamp_ns("2026-12-04T10:00:05.1Z") == parse_timestamp_ns(
        "2026-12-04T10:00:05.100000000Z"
    )
    assert parse_timestamp_ns("2026-12-04T10:00:05Z") < parse_timestamp_ns(
        "2026-12-04T10:00:05.000000001Z"
    )
    assert parse_timestamp_ns("2026-12-04T10:00:05+00:00") == parse_timestamp_ns(
        "2026-12-04T10:00:05Z"
    )
    assert parse_timestamp_ns("not a timestamp") is None
    assert parse_timestamp_ns("2026-12-04T10:00:05.1234567890Z") is None


def test_splitter_joins_lines_across_chunks_and_keeps_the_rest():
    splitter = LineSplitter()
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\nde") == [b"abc"]
    assert splitter.feed(b"f\n\ng") == [b"def", b""]
    assert splitter.take_partial() == b"g"
    assert splitter.take_partial() is None


def test_follower_replaces_invalid_utf8_and_keeps_long_lines():
    follower = LogFollower("main")
    long_line = "长" * 300_000
    data = render([(stamp(1, 5), b"bad \xff\xfe bytes"), (stamp(1, 6), long_line.encode())])
    shown = []
    for start in range(0, len(data), 4096):
        shown += follower.feed(data[start : start + 4096])
    assert shown == ["[main] bad \ufffd\ufffd bytes", "[main] " + long_line]


def test_unterminated_last_line_is_shown_only_when_the_stream_is_complete():
    follower = LogFollower("main")
    follower.begin_pass()
    assert follower.feed(f"{stamp(1, 1)} one\n{stamp(1, 2)} tw".encode()) == ["[main] one"]
    assert follower.end_pass(complete=False) == []
    follower.begin_pass()
    # the re-read (sinceSeconds) starts before the cut and delivers the line whole
    assert follower.feed(f"{stamp(1, 1)} one\n{stamp(1, 2)} two".encode()) == []
    assert follower.end_pass(complete=True) == ["[main] two"]


def test_lines_sharing_a_timestamp_are_counted_across_a_reread():
    same = stamp(3, 0)
    follower = LogFollower("main")
    follower.begin_pass()
    assert follower.feed(render([(same, b"a"), (same, b"b")])) == ["[main] a", "[main] b"]
    follower.begin_pass()
    shown = follower.feed(render([(stamp(2, 9), b"old"), (same, b"a"), (same, b"b"), (same, b"c")]))
    assert shown == ["[main] c"]
    assert follower.cursor.to_dict() == {"last_timestamp": same, "count": 3}


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    count=st.integers(min_value=1, max_value=120),
)
def test_every_line_once_in_order_whatever_the_cuts_and_rereads(data, count):
    # Lines with clustered timestamps (many share one), as a fast step writes them.
    nanos = sorted(data.draw(st.lists(st.integers(0, 40), min_size=count, max_size=count)))
    entries = [(stamp(0, n * 1000), f"line {i} \u00e9".encode()) for i, n in enumerate(nanos)]
    body = render(entries)
    offsets = [0]
    for ts, line in entries:
        offsets.append(offsets[-1] + len(ts) + len(line) + 2)
    # A re-read is a time window: it starts at the first line of some timestamp, at or before
    # the timestamp of the last line shown (sinceSeconds covers the gap and then some).
    group_starts = [i for i in range(count) if i == 0 or entries[i][0] != entries[i - 1][0]]
    follower = LogFollower("main")
    shown: list[str] = []
    done = 0  # complete lines delivered so far
    while True:
        last_group = max((g for g in group_starts if g <= max(done - 1, 0)), default=0)
        start_line = data.draw(st.sampled_from([g for g in group_starts if g <= last_group][-3:]))
        end = len(body) - data.draw(
            st.integers(min_value=0, max_value=len(body) - offsets[done] - 1)
        )
        follower.begin_pass()
        chunk_size = data.draw(st.integers(min_value=1, max_value=64))
        for at in range(offsets[start_line], end, chunk_size):
            shown += follower.feed(body[at : min(at + chunk_size, end)])
        shown += follower.end_pass(complete=end == len(body))
        if end == len(body):
            break
        done = max(done, sum(1 for o in offsets[1:] if o <= end))
    assert shown == [f"[main] line {i} \u00e9" for i in range(count)]


def test_cursor_round_trips_and_asks_for_enough_seconds():
    cursor = LogCursor()
    assert cursor.since_seconds(1000.0) is None
    assert cursor.admit(parse_timestamp_ns(stamp(4, 500)), stamp(4, 500))
    again = LogCursor.from_dict(cursor.to_dict())
    assert again.last_ns == cursor.last_ns and again.count == 1
    at = parse_timestamp_ns(stamp(4, 500)) / 1e9
    assert again.since_seconds(at + 0.2) >= 1 + 1
    assert again.since_seconds(at + 10.5) >= 11


def result_line(kind: str, payload: bytes, **extra: str) -> str:
    body = {"kind": kind, "encoding": "base64", "data": base64.b64encode(payload).decode(), **extra}
    return "::sre-result:: " + json.dumps(body)


def test_result_lines_are_kept_and_shown_as_a_summary():
    follower = LogFollower("main")
    line = result_line("junit", b"<testsuites/>")
    shown = follower.feed(f"{stamp(1, 1)} {line}\n{stamp(1, 2)} done\n".encode())
    assert shown == ["[main] result kind=junit bytes=20", "[main] done"]
    assert follower.collector.results[0]["kind"] == "junit"
    assert list(follower.tail) == ["done"]


def test_bad_result_lines_are_refused_with_the_kind_named():
    collector = ResultCollector(max_result_bytes=200)
    assert collector.offer("::sre-result:: {not json").startswith("result refused")
    assert collector.offer('::sre-result:: {"kind": "rocket", "data": ""}').startswith(
        "result refused"
    )
    assert collector.offer(result_line("coverage", b"x" * 400)).startswith("result refused")
    assert collector.results == []
    assert [e.split(":")[0] for e in collector.errors] == [
        "result kind=unknown",
        "result kind=rocket",
        "result kind=coverage",
    ]
    assert collector.offer("plain output") is None


def test_init_container_followers_do_not_collect_results():
    follower = LogFollower("clone", collect_results=False)
    line = result_line("image", b"")
    assert follower.feed(f"{stamp(1, 1)} {line}\n".encode()) == [f"[clone] {line}"]
    assert follower.collector is None


def test_batches_keep_order_bound_size_and_split_huge_lines():
    lines = [f"l{i}" for i in range(600)]
    records = list(batches(lines, max_lines=256))
    assert [r.count("\n") + 1 for r in records] == [256, 256, 88]
    assert "\n".join(records).split("\n") == lines
    huge = "x" * (MAX_RECORD_CHARS * 2 + 5)
    assert "".join(batches([huge])) == huge
    assert [len(r) for r in batches(["a", huge, "b"])] == [
        1,
        MAX_RECORD_CHARS,
        MAX_RECORD_CHARS,
        5,
        1,
    ]
