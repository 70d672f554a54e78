"""Run one site: ``python -m sandbox.kube --site site-a --port 0 --kubeconfig PATH``.

When the API and ingress listen, one JSON line goes to stdout:
``{"site": ..., "api": "http://127.0.0.1:P", "ingress": "http://127.0.0.1:Q", "kubeconfig": PATH}``.
The servers listen on ``--host`` (127.0.0.1 by default); the URLs of that line and the
kubeconfig's server name ``--advertise-host`` (by default the listen host, or 127.0.0.1 when
listening on 0.0.0.0 or ::), so a site in a container can hand out a kubeconfig naming its
service, e.g. ``--host 0.0.0.0 --advertise-host kube-site-a``.
SIGTERM or SIGINT stops the servers and kills every pod process of the site.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from sandbox.kube.site import Site, SiteOptions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.kube", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--site", default="site-a", help="site name; also the kubeconfig context")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the API and ingress listen on (0.0.0.0: every interface)",
    )
    parser.add_argument(
        "--advertise-host",
        help="host name written into the kubeconfig and the ready line's URLs "
        "(default: the listen host, or 127.0.0.1 for 0.0.0.0 and ::)",
    )
    parser.add_argument("--port", type=int, default=0, help="API port (0: any free port)")
    parser.add_argument(
        "--ingress-port", type=int, default=0, help="HTTP ingress port (0: any free port)"
    )
    parser.add_argument(
        "--kubeconfig", required=True, type=Path, help="where to write the kubeconfig"
    )
    parser.add_argument(
        "--images-dir", type=Path, help="folder of sha256-<hex>.tar.gz image archives"
    )
    parser.add_argument(
        "--state-dir", type=Path, help="folder for pod directories (default: a temporary one)"
    )
    parser.add_argument("--token", help="bearer token to require (default: random)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="divide probe, back-off and deadline durations by this",
    )
    parser.add_argument(
        "--namespace", action="append", default=[], help="namespace to create at start (repeatable)"
    )
    parser.add_argument(
        "--auto-create-namespaces",
        action="store_true",
        help="create a missing namespace on first use instead of answering 404",
    )
    parser.add_argument(
        "--history-size",
        type=int,
        default=5000,
        help="watch events kept; older resourceVersions get 410",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="also listen with HTTPS and write <kubeconfig>-https (for kubectl)",
    )
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    options = SiteOptions(
        name=args.site,
        host=args.host,
        advertise_host=args.advertise_host,
        port=args.port,
        ingress_port=args.ingress_port,
        kubeconfig_path=args.kubeconfig.resolve(),
        images_dir=args.images_dir,
        state_dir=args.state_dir,
        token=args.token,
        speed=args.speed,
        namespaces=tuple(args.namespace),
        auto_create_namespaces=args.auto_create_namespaces,
        history_size=args.history_size,
        tls=args.tls,
    )
    site = Site(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await site.start()
    ready = {
        "site": site.name,
        "api": site.api_url,
        "ingress": site.ingress_url,
        "kubeconfig": str(options.kubeconfig_path),
    }
    if options.tls:
        ready["https_kubeconfig"] = str(site.https_kubeconfig_path(args.kubeconfig.resolve()))
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await site.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
