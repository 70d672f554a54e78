"""``python -m operators.logsearch``: find task log lines across runs in Elasticsearch.

Examples::

    python -m operators.logsearch --service hello-api --site site-a --text "rollout done"
    python -m operators.logsearch --run-id manual__2026-12-04T10:00:00+00:00 --text Traceback
    python -m operators.logsearch --service hello-api --release 1.4.2 --limit 200 --json

Service, release and site are matched as the ``key=value`` phrases our operators log
(``service=hello-api``); see :mod:`operators.logsearch.search` for the exact rules. The cluster,
indices and client options are Airflow's ``[elasticsearch]`` settings. Lines are printed oldest
first (the newest ``--limit`` of them), then each task log's Kibana link on stderr.

Exit status: 0 when lines were found, 1 when none, 2 on a usage or connection error.
"""

from __future__ import annotations

import argparse
import json
import sys

from operators.logsearch.search import LogHit, LogQuery, LogSearchError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m operators.logsearch",
        description="Find task log lines in Elasticsearch by service, release, run, site and text.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1] if __doc__ else None,
    )
    parser.add_argument("--service", help="service name, as logged in service=<name>")
    parser.add_argument("--release", help="release, as logged in release=<version>")
    parser.add_argument("--run-id", help="Airflow DAG run id")
    parser.add_argument("--site", help="site name, as logged in site=<name>")
    parser.add_argument("--text", help="phrase the line must contain")
    parser.add_argument("--limit", type=int, default=50, help="most lines shown (default 50)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _render(hit: LogHit) -> str:
    level = (hit.level or "").ljust(7)
    return f"{hit.timestamp or '-'}  {level}  {hit.log_id} #{hit.offset}  {hit.event}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    query = LogQuery(
        service=args.service,
        release=args.release,
        run_id=args.run_id,
        site=args.site,
        text=args.text,
        limit=args.limit,
    )
    try:
        query.validate()
        from operators.logsearch.search import LogSearch
        from operators.logsearch.settings import LogSettings, make_client

        settings = LogSettings.from_airflow_config()
        hits = LogSearch(make_client(settings), settings).search(query)
    except (LogSearchError, ValueError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    for hit in reversed(hits):
        sys.stdout.write(
            (json.dumps(hit.as_dict(), ensure_ascii=False) if args.json else _render(hit)) + "\n"
        )
    sys.stdout.flush()
    if not hits:
        sys.stderr.write("no matching log lines\n")
        return 1
    seen: dict[str, str | None] = {}
    for hit in hits:
        seen.setdefault(hit.log_id, hit.url)
    sys.stderr.write(f"{len(hits)} line(s) from {len(seen)} task log(s)\n")
    for log_id, url in seen.items():
        sys.stderr.write(f"  {log_id}  {url or ''}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
