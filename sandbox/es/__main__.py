"""``python -m sandbox.es``: run the Elasticsearch stand-in until SIGINT/SIGTERM.

When it listens it prints one JSON line, ``{"url": ..., "port": ..., "version": ...}``, so a
parent process can read where it is.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from sandbox.es.server import DEFAULT_VERSION, EsStandIn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.es", description=__doc__)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=9200, help="port (0: any free port)")
    parser.add_argument(
        "--version",
        default=DEFAULT_VERSION,
        help="Elasticsearch version to emulate; its major (and the one before) is accepted in compatible-with",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=None,
        help="answer 413 to request bodies larger than this (like http.max_content_length)",
    )
    args = parser.parse_args(argv)
    node = EsStandIn(args.host, args.port, args.version)
    node.faults.max_body_bytes = args.max_body_bytes
    url = node.start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    sys.stdout.write(
        json.dumps({"url": url, "port": int(url.rsplit(":", 1)[1]), "version": args.version}) + "\n"
    )
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
