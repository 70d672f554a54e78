"""``python -m sandbox.sonarqube --port 0 --token TOKEN``: run the stand-in until interrupted."""

from __future__ import annotations

import argparse
import json
import signal
import threading

from sandbox.sonarqube.server import SonarQubeStandIn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=None, help="default: a random token, printed")
    args = parser.parse_args()
    stand_in = SonarQubeStandIn(args.token)
    url = stand_in.start(port=args.port)
    print(json.dumps({"url": url, "token": stand_in.token}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    stand_in.stop()


if __name__ == "__main__":
    main()
