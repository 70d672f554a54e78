"""Freeze windows: the shipped file validates, windows open and close when they should."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from operators.release.freeze import (
    FreezeConfigError,
    active_freeze,
    load_freeze_windows,
    parse_duration,
)


def write(tmp_path, text):
    path = tmp_path / "freeze.yaml"
    path.write_text(text)
    return path


def test_shipped_file_is_valid():
    names = {w.name for w in load_freeze_windows()}
    assert {"weekend", "nightly-batch"} <= names


def test_recurring_window_is_active_for_its_duration_in_its_time_zone(tmp_path):
    windows = load_freeze_windows(
        write(
            tmp_path,
            'timezone: Asia/Shanghai\nwindows:\n  - {name: fri, reason: r, cron: "0 18 * * 5", duration: 2h}\n',
        )
    )
    friday_18_local = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai
    assert active_freeze("any", friday_18_local - timedelta(seconds=1), windows) is None
    active = active_freeze("any", friday_18_local, windows)
    assert active is not None and active.window.name == "fri"
    assert active.end - active.start == timedelta(hours=2)
    assert (
        active_freeze("any", friday_18_local + timedelta(hours=1, minutes=59), windows) is not None
    )
    assert active_freeze("any", friday_18_local + timedelta(hours=2), windows) is None


def test_one_off_window_and_per_service_scope(tmp_path):
    windows = load_freeze_windows(
        write(
            tmp_path,
            "windows:\n  - {name: peak, reason: r, services: [order-service], start: '2027-02-05', end: '2027-02-06T12:00'}\n",
        )
    )
    inside = datetime(2027, 2, 6, 11, 0, tzinfo=UTC)
    assert active_freeze("order-service", inside, windows) is not None
    assert active_freeze("hello-api", inside, windows) is None
    assert active_freeze("order-service", datetime(2027, 2, 6, 12, 0, tzinfo=UTC), windows) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "windows:\n  - {name: x, reason: r, cron: '0 1 * * *'}\n",
            "cron + duration or start + end",
        ),
        (
            "windows:\n  - {name: x, reason: r, cron: '0 1 * * *', duration: 1h, start: '2027-01-01', end: '2027-01-02'}\n",
            "not both",
        ),
        ("windows:\n  - {name: x, reason: r, cron: '0 1 * *', duration: 1h}\n", "windows.0.cron"),
        ("windows:\n  - {name: x, reason: r, cron: '99 1 * * *', duration: 1h}\n", "not valid"),
        (
            "windows:\n  - {name: x, reason: r, start: '2027-01-02', end: '2027-01-01'}\n",
            "not after start",
        ),
        (
            "windows:\n  - {name: x, reason: r, cron: '0 1 * * *', duration: 1h, timezone: Mars/Base}\n",
            "time zone",
        ),
        (
            "windows:\n  - {name: x, reason: r, cron: '0 1 * * *', duration: soon}\n",
            "windows.0.duration",
        ),
        ("wind: []\n", "(top level)"),
    ],
)
def test_bad_files_are_refused_with_the_field_named(tmp_path, text, words):
    with pytest.raises(FreezeConfigError, match="freeze.yaml") as err:
        load_freeze_windows(write(tmp_path, text))
    assert words in str(err.value)


def test_durations():
    assert parse_duration("1d12h30m") == timedelta(days=1, hours=12, minutes=30)
    with pytest.raises(FreezeConfigError):
        parse_duration("1x")
