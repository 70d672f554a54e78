"""``python -m sandbox.gateway``: run the stand-in gateway until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from sandbox.gateway.server import Gateway


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.gateway", description=__doc__)
    parser.add_argument(
        "--admin-port", type=int, default=9180, help="admin API port (0: any free port)"
    )
    parser.add_argument(
        "--proxy-port", type=int, default=9080, help="user traffic port (0: any free port)"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="Prometheus port (0: any free port)"
    )
    parser.add_argument("--admin-key", default=None, help="key the admin API requires in X-API-KEY")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument(
        "--no-upstream-addr-label",
        action="store_true",
        help="leave the upstream_addr label out of apisix_http_status, as a stock APISIX does",
    )
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host != "::1":
        parser.error("--host must be a loopback address")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(_serve(args))
    return 0


async def _serve(args: argparse.Namespace) -> None:
    gateway = Gateway(
        args.admin_key, host=args.host, upstream_addr_label=not args.no_upstream_addr_label
    )
    urls = await gateway.start(args.admin_port, args.proxy_port, args.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    sys.stdout.write(json.dumps(urls) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await gateway.stop()


if __name__ == "__main__":
    sys.exit(main())
