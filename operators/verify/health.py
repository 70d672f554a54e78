"""HTTP health check of one service at one site's ingress, as the catalog's ``health`` describes.

Each attempt is ``GET {ingress}{health.path}`` with ``Host: {deploy.host}`` and the catalog's
timeout; it passes when the status is ``expect_status`` and, when set, the body contains
``expect_body``. A failing attempt is retried ``health.retries`` times, ``interval_seconds``
apart. Redirects are not followed: a redirect is an answer of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

    from include.catalog import HealthCheck

MAX_BODY_CHARS = 65536


@dataclass(frozen=True)
class HealthAttempt:
    """One request of a health check."""

    number: int
    ok: bool
    status: int | None
    reason: str
    elapsed_seconds: float


@dataclass(frozen=True)
class HealthResult:
    """All attempts of a health check; ``ok`` when the last one passed."""

    url: str
    host: str
    attempts: tuple[HealthAttempt, ...]

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ok

    @property
    def reason(self) -> str:
        return self.attempts[-1].reason if self.attempts else "not attempted"

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "host": self.host,
            "ok": self.ok,
            "reason": self.reason,
            "attempts": [asdict(a) for a in self.attempts],
        }


def judge_health_answer(status: int, body: str, health: HealthCheck) -> str | None:
    """None when the answer is healthy, else why it is not."""
    if status != health.expect_status:
        return f"status {status}, expected {health.expect_status}"
    if health.expect_body is not None and health.expect_body not in body:
        shown = body[:120].replace("\n", "\\n")
        return f"body does not contain {health.expect_body!r} (got {shown!r})"
    return None


def check_health(
    base_url: str,
    host: str,
    health: HealthCheck,
    *,
    interval_seconds: float = 1.0,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> HealthResult:
    """Run the health check against ``base_url`` with ``Host: host``; stop at the first pass.

    :param base_url: the site's ingress, e.g. ``http://10.0.0.5:80``.
    :param host: the service's host name, sent as the Host header.
    :param health: path, expected status and body, timeout and retries (from the catalog).
    :param interval_seconds: wait between attempts.
    :param session: HTTP session to use; a new one by default.
    :param sleep: how to wait between attempts.
    """
    import requests

    url = base_url.rstrip("/") + health.path
    own = session is None
    http = session or requests.Session()
    attempts: list[HealthAttempt] = []
    try:
        for number in range(1, health.retries + 2):
            if number > 1:
                sleep(interval_seconds)
            started = time.monotonic()
            status: int | None = None
            try:
                response = http.get(
                    url,
                    headers={"Host": host},
                    timeout=health.timeout_seconds,
                    allow_redirects=False,
                )
                status = response.status_code
                problem = judge_health_answer(status, response.text[:MAX_BODY_CHARS], health)
            except requests.Timeout:
                problem = f"no answer within {health.timeout_seconds:g} s"
            except requests.RequestException as err:
                problem = f"{type(err).__name__}: {str(err)[:160]}"
            attempts.append(
                HealthAttempt(
                    number=number,
                    ok=problem is None,
                    status=status,
                    reason=problem or "healthy",
                    elapsed_seconds=round(time.monotonic() - started, 3),
                )
            )
            if problem is None:
                break
    finally:
        if own:
            http.close()
    return HealthResult(url=url, host=host, attempts=tuple(attempts))
