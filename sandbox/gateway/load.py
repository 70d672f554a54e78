"""Bounded user traffic through the gateway, counting what users would see.

``LoadGenerator(proxy_url, host, rate_per_s, max_requests)`` sends at most ``max_requests``
requests at a steady rate from a thread (a few worker threads keep the rate when an answer is
slow) until it has sent them all or ``stop()`` is called. A request is *ok* with a 2xx or 3xx
answer and *failed* otherwise (an error status or no answer at all). The summary counts by status,
by site (from a response header, ``X-Site`` by default) and by error.

Command line: ``python -m sandbox.gateway.load --proxy URL --host HOST --rate 50
--max-requests 500`` prints the summary as JSON when done (or on SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

NO_ANSWER = "no-answer"


@dataclass
class LoadSummary:
    """What the users saw."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_site: dict[str, int] = field(default_factory=dict)
    failed_by_site: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_failures: list[dict[str, Any]] = field(default_factory=list)
    duration_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadGenerator:
    """Send ``max_requests`` requests at ``rate_per_s`` to ``proxy_url`` with ``Host: host``.

    :param proxy_url: the gateway's user-traffic URL, e.g. ``http://127.0.0.1:9080``.
    :param host: Host header of every request (the service's public host).
    :param rate_per_s: requests per second.
    :param max_requests: hard bound on requests sent.
    :param path: path (and query) requested.
    :param timeout_seconds: per-request timeout; no answer in time counts as failed.
    :param site_header: response header naming the site that answered.
    :param workers: threads sending requests.
    """

    def __init__(
        self,
        proxy_url: str,
        host: str,
        rate_per_s: float,
        max_requests: int,
        *,
        path: str = "/",
        timeout_seconds: float = 2.0,
        site_header: str = "X-Site",
        workers: int = 8,
    ) -> None:
        if rate_per_s <= 0 or max_requests < 0:
            raise ValueError("rate_per_s must be > 0 and max_requests >= 0")
        self.url = proxy_url.rstrip("/") + (path if path.startswith("/") else "/" + path)
        self.host = host
        self.rate_per_s = rate_per_s
        self.max_requests = max_requests
        self.timeout_seconds = timeout_seconds
        self.site_header = site_header
        self._workers = workers
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._summary = LoadSummary()
        self._by_status: Counter[str] = Counter()
        self._by_site: Counter[str] = Counter()
        self._failed_by_site: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._started = 0.0
        self._finished: float | None = None
        self._thread = threading.Thread(target=self._run, name="load-generator", daemon=True)

    def start(self) -> LoadGenerator:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> LoadSummary:
        """Stop sending, wait for the requests under way, and return the summary."""
        self._stop.set()
        self.join(timeout)
        return self.summary()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every request is sent and answered; True when done."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def summary(self) -> LoadSummary:
        with self._lock:
            end = self._finished if self._finished is not None else time.monotonic()
            return LoadSummary(
                sent=self._summary.sent,
                ok=self._summary.ok,
                failed=self._summary.failed,
                by_status=dict(sorted(self._by_status.items())),
                by_site=dict(sorted(self._by_site.items())),
                failed_by_site=dict(sorted(self._failed_by_site.items())),
                errors=dict(sorted(self._errors.items())),
                first_failures=list(self._summary.first_failures),
                duration_seconds=round(end - self._started, 3) if self._started else 0.0,
            )

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        interval = 1.0 / self.rate_per_s
        with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="load") as pool:
            for index in range(self.max_requests):
                due = self._started + index * interval
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                with self._lock:
                    self._summary.sent += 1
                pool.submit(self._one)
        for session in self._sessions:
            session.close()
        with self._lock:
            self._finished = time.monotonic()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def _one(self) -> None:
        sent_at = time.monotonic() - self._started
        status = NO_ANSWER
        site = ""
        error = ""
        try:
            response = self._session().get(
                self.url, headers={"Host": self.host}, timeout=self.timeout_seconds
            )
            status = str(response.status_code)
            site = response.headers.get(self.site_header, "")
        except requests.RequestException as err:
            error = type(err).__name__
        ok = status != NO_ANSWER and status[0] in "23"
        with self._lock:
            self._by_status[status] += 1
            if site:
                self._by_site[site] += 1
            if error:
                self._errors[error] += 1
            if ok:
                self._summary.ok += 1
                return
            self._summary.failed += 1
            self._failed_by_site[site or "unknown"] += 1
            if len(self._summary.first_failures) < 20:
                self._summary.first_failures.append(
                    {
                        "at_seconds": round(sent_at, 3),
                        "status": status,
                        "site": site,
                        "error": error,
                    }
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.gateway.load", description=__doc__)
    parser.add_argument("--proxy", required=True, help="gateway user-traffic URL")
    parser.add_argument("--host", required=True, help="Host header (the service's public host)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--max-requests", type=int, default=200, help="requests to send at most")
    parser.add_argument("--path", default="/", help="path to request")
    parser.add_argument("--timeout", type=float, default=2.0, help="per-request timeout in seconds")
    parser.add_argument("--site-header", default="X-Site", help="response header naming the site")
    args = parser.parse_args(argv)
    if args.max_requests > 1_000_000:
        parser.error("--max-requests is capped at 1000000")
    generator = LoadGenerator(
        args.proxy,
        args.host,
        args.rate,
        args.max_requests,
        path=args.path,
        timeout_seconds=args.timeout,
        site_header=args.site_header,
    )
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: generator._stop.set())
    generator.start()
    while not generator.join(0.2):
        pass
    sys.stdout.write(json.dumps(generator.summary().to_dict()) + "\n")
    return 0 if generator.summary().failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
