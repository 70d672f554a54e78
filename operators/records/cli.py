"""Command line of the records store: ``python -m operators.records <command>``.

Commands::

    migrate [--quiet]                  apply pending schema migrations (no-op when up to date)
    current-images [--service NAME]    the image each site runs, per service
    history SERVICE [--limit N]        releases of a service with their steps, newest first
    last-green DIGEST                  newest green build, test report and scan of a digest
    audit [--limit N] [--target T]     newest audit events

Every query command takes ``--json`` for machine-readable output, and every command takes
``--conn-id`` (default: ``SRE_RECORDS_CONN_ID`` or ``sre_records``). Exit status 1 means the
records database failed or is misconfigured; the reason is on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from operators.records.models import LastGreen, RecordsError, ReleaseRecord
from operators.records.store import RecordsStore


def _limit(text: str) -> int:
    """A row limit for the queries: 1 to 10,000."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"{value} is out of range; use 1 to 10000")
    return value


def _digest(text: str) -> str:
    """A content digest: ``sha256:<64 hex>``."""
    import re

    if not re.fullmatch(r"sha256:[0-9a-f]{64}", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a digest; expected sha256:<64 hex digits>"
        )
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m operators.records",
        description="Platform records: schema migrations and queries.",
    )
    parser.add_argument("--conn-id", help="Airflow connection id of the records store")
    commands = parser.add_subparsers(dest="command", required=True)

    migrate = commands.add_parser("migrate", help="apply pending schema migrations")
    migrate.add_argument("--quiet", action="store_true", help="print nothing unless it fails")

    current = commands.add_parser("current-images", help="the image each site runs")
    current.add_argument("--service", help="only this service")

    history = commands.add_parser("history", help="release history of a service")
    history.add_argument("service")
    history.add_argument("--limit", type=_limit, default=20, help="1 to 10000 (default 20)")

    green = commands.add_parser(
        "last-green",
        help="newest green build/test/scan of a digest; exit status 3 when it is not releasable",
    )
    green.add_argument("digest", type=_digest, help="sha256:<64 hex digits>")

    audit = commands.add_parser("audit", help="newest audit events")
    audit.add_argument("--limit", type=_limit, default=50, help="1 to 10000 (default 50)")
    audit.add_argument("--target", help="only events about this target")

    for sub in (current, history, green, audit):
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO, *, empty: str
) -> None:
    """Print rows as aligned columns; ``empty`` when there are none."""
    if not rows:
        print(empty, file=out)
        return
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max(len(h), *(_width(r[i]) for r in cells)) for i, h in enumerate(headers)]
    for row in [[h.upper() for h in headers], *cells]:
        line = "  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True))
        print(line.rstrip(), file=out)


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: CJK and other wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=_json_default), file=out)


def _print_history(releases: list[ReleaseRecord], out: TextIO) -> None:
    print_table(
        ("id", "state", "image", "triggered_by", "source", "started", "finished"),
        [
            (r.id, r.state, r.image, r.triggered_by, r.source, r.started_at, r.finished_at)
            for r in releases
        ],
        out,
        empty="no releases recorded",
    )
    for release in releases:
        if not release.steps:
            continue
        print(f"\nrelease {release.id} steps:", file=out)
        print_table(
            ("site", "step", "state", "weights", "updated"),
            [(s.site, s.step, s.state, s.weights, s.updated_at) for s in release.steps],
            out,
            empty="",
        )


def _print_last_green(green: LastGreen, out: TextIO) -> None:
    rows: list[tuple[Any, ...]] = []
    if green.build:
        b = green.build
        rows.append(("build", b.service, b.commit, f"{b.ref.dag_id}/{b.ref.run_id}", b.created_at))
    if green.test:
        t = green.test
        summary = f"{t.counts.total} tests, {t.counts.skipped} skipped"
        rows.append(("test", t.service, summary, f"{t.ref.dag_id}/{t.ref.run_id}", t.created_at))
    if green.scan:
        s = green.scan
        summary = f"gate passed, {sum(s.findings.values())} findings"
        rows.append(("scan", s.service, summary, f"{s.ref.dag_id}/{s.ref.run_id}", s.created_at))
    print_table(
        ("kind", "service", "what", "run", "recorded"),
        rows,
        out,
        empty=f"nothing green recorded for {green.digest}",
    )
    missing = [kind for kind in ("build", "test", "scan") if getattr(green, kind) is None]
    if missing:
        print(f"not green: {', '.join(missing)}", file=out)


def run(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit status."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("operators.records").setLevel(logging.ERROR if quiet else logging.WARNING)
    try:
        with RecordsStore.from_conn_id(args.conn_id) as store:
            return _dispatch(args, store, out)
    except RecordsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as command-line tools do.
        sys.stderr.close()
        return 0


def _dispatch(args: argparse.Namespace, store: RecordsStore, out: TextIO) -> int:
    from operators.records.migrate import migrate

    if args.command == "migrate":
        applied = migrate(store)
        if not args.quiet:
            if applied:
                for m in applied:
                    print(f"applied {m.version:04d}_{m.name}", file=out)
            else:
                print("records schema is up to date", file=out)
        return 0
    if args.command == "current-images":
        images = store.current_images(args.service)
        if args.json:
            _print_json(images, out)
        else:
            print_table(
                ("service", "site", "image", "release", "updated"),
                [(i.service, i.site, i.image, i.release_id, i.updated_at) for i in images],
                out,
                empty="no site images recorded",
            )
        return 0
    if args.command == "history":
        releases = store.release_history(args.service, limit=args.limit)
        if args.json:
            _print_json(releases, out)
        else:
            _print_history(releases, out)
        return 0
    if args.command == "last-green":
        green = store.last_green(args.digest)
        if args.json:
            _print_json({**dataclasses.asdict(green), "releasable": green.releasable}, out)
        else:
            _print_last_green(green, out)
        return 0 if green.releasable else 3
    events = store.recent_audit_events(args.limit, target=args.target)
    if args.json:
        _print_json(events, out)
    else:
        print_table(
            ("time", "actor", "action", "target", "source", "run"),
            [(e.occurred_at, e.actor, e.action, e.target, e.source, e.run_id) for e in events],
            out,
            empty="no audit events recorded",
        )
    return 0
