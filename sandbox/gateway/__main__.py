"""``python -m sandbox.gateway``: run the stand-in gateway until SIGINT/SIGTERM.

It listens on 127.0.0.1 unless ``--host`` says otherwise. A host that is not a loopback address
(``0.0.0.0`` in a container, for instance) makes the admin API reachable from the network, so it
is refused without ``--admin-key`` and accepted with a WARNING on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import signal
import sys

from sandbox.gateway.server import Gateway


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line; refuse or warn about a non-loopback ``--host``."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.gateway",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
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
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; a non-loopback one (e.g. 0.0.0.0) needs --admin-key",
    )
    parser.add_argument(
        "--no-upstream-addr-label",
        action="store_true",
        help="leave the upstream_addr label out of apisix_http_status, as a stock APISIX does",
    )
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        if not args.admin_key:
            parser.error(
                f"--host {args.host} is not a loopback address: the admin API would be open "
                "to the network; give --admin-key to protect it"
            )
        sys.stderr.write(
            f"WARNING: listening on {args.host}: the admin API is reachable from the network "
            "and only --admin-key protects it\n"
        )
        sys.stderr.flush()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
