"""Release freeze windows: load, validate and ask which window (if any) is active now.

The file is ``include/freeze_windows.yaml`` (or ``SRE_FREEZE_WINDOWS_PATH``), validated against
``include/schemas/freeze_windows.schema.json``. A recurring window starts at every time its cron
expression names, in its time zone, and lasts its duration; a one-off window runs from ``start``
to ``end`` (local times of its time zone; a bare date means midnight).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

INCLUDE_DIR = Path(__file__).resolve().parent.parent.parent / "include"
DEFAULT_PATH = INCLUDE_DIR / "freeze_windows.yaml"
SCHEMA_PATH = INCLUDE_DIR / "schemas" / "freeze_windows.schema.json"

_DURATION_PART = re.compile(r"([0-9]+)([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


class FreezeConfigError(ValueError):
    """The freeze windows file is missing or does not match its schema."""


@dataclass(frozen=True)
class FreezeWindow:
    """One window; exactly one of (cron, duration) or (start, end) is set."""

    name: str
    reason: str
    timezone: str
    services: tuple[str, ...] = ()
    cron: str | None = None
    duration: timedelta | None = None
    start: datetime | None = None
    end: datetime | None = None

    def applies_to(self, service: str) -> bool:
        return not self.services or service in self.services

    def active_span(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The (start, end) of this window that contains ``now`` (aware), or None."""
        zone = ZoneInfo(self.timezone)
        local_now = now.astimezone(zone)
        if self.cron is not None and self.duration is not None:
            from croniter import croniter  # type: ignore[import-untyped]

            # the latest start at or before now reaches furthest, all spans being equally long
            itr = croniter(self.cron, local_now + timedelta(seconds=1))
            start = itr.get_prev(datetime)
            end = start + self.duration
            return (start, end) if start <= local_now < end else None
        if self.start is not None and self.end is not None:
            start = self.start.replace(tzinfo=zone)
            end = self.end.replace(tzinfo=zone)
            return (start, end) if start <= local_now < end else None
        return None


@dataclass(frozen=True)
class ActiveFreeze:
    """A window active at a moment, with the span that contains it."""

    window: FreezeWindow
    start: datetime
    end: datetime

    def describe(self) -> str:
        return (
            f"freeze window {self.window.name!r} is active from {self.start.isoformat()} "
            f"until {self.end.isoformat()} ({self.window.reason})"
        )


def freeze_path() -> Path:
    return Path(os.environ.get("SRE_FREEZE_WINDOWS_PATH") or DEFAULT_PATH)


def parse_duration(text: str) -> timedelta:
    """``62h`` -> 62 hours; ``1d12h30m`` -> 1 day 12 hours 30 minutes."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise FreezeConfigError(f"duration {text!r} is not valid; write it like 62h, 90m or 1d12h")
    return sum((timedelta(**{_UNITS[unit]: int(number)}) for number, unit in parts), timedelta())


def _local(text: str) -> datetime:
    return datetime.fromisoformat(text if "T" in text else text + "T00:00:00")


def load_freeze_windows(path: str | os.PathLike[str] | None = None) -> list[FreezeWindow]:
    """Read and validate the freeze windows file; raise FreezeConfigError naming the window and field."""
    import yaml
    from jsonschema import Draft202012Validator

    source = Path(path) if path is not None else freeze_path()
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise FreezeConfigError(
            f"{source}: cannot read the freeze windows ({err.strerror})"
        ) from None
    except yaml.YAMLError as err:
        raise FreezeConfigError(f"{source}: not valid YAML ({err})") from None
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    errors = sorted(
        Draft202012Validator(schema).iter_errors(raw), key=lambda e: list(map(str, e.absolute_path))
    )
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        if first.validator == "oneOf":
            message = "a window needs either cron + duration or start + end, not both"
        else:
            message = first.message
        raise FreezeConfigError(f"{source}: field {where}: {message}")
    default_zone = raw.get("timezone") or "UTC"
    windows: list[FreezeWindow] = []
    for item in raw.get("windows") or []:
        zone = item.get("timezone") or default_zone
        try:
            ZoneInfo(zone)
        except Exception:
            raise FreezeConfigError(
                f"{source}: window {item['name']!r}: {zone!r} is not a known time zone"
            ) from None
        cron = item.get("cron")
        if cron is not None:
            from croniter import croniter

            if not croniter.is_valid(cron):
                raise FreezeConfigError(
                    f"{source}: window {item['name']!r}: cron {cron!r} is not valid"
                )
        start = _local(item["start"]) if "start" in item else None
        end = _local(item["end"]) if "end" in item else None
        if start is not None and end is not None and end <= start:
            raise FreezeConfigError(
                f"{source}: window {item['name']!r}: end {item['end']} is not after start {item['start']}"
            )
        windows.append(
            FreezeWindow(
                name=item["name"],
                reason=item["reason"],
                timezone=zone,
                services=tuple(item.get("services") or ()),
                cron=cron,
                duration=parse_duration(item["duration"]) if "duration" in item else None,
                start=start,
                end=end,
            )
        )
    return windows


def active_freeze(service: str, now: datetime, windows: list[FreezeWindow]) -> ActiveFreeze | None:
    """The first window active for ``service`` at ``now`` (an aware datetime), or None."""
    for window in windows:
        if not window.applies_to(service):
            continue
        span = window.active_span(now)
        if span is not None:
            return ActiveFreeze(window, span[0], span[1])
    return None


def describe_windows(windows: list[FreezeWindow]) -> list[dict[str, Any]]:
    return [
        {"name": w.name, "services": list(w.services) or ["*"], "reason": w.reason} for w in windows
    ]
