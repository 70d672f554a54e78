"""What counts as a transient Kubernetes API answer, and how long to wait before trying again.

The provider's ``generic_api_retry`` covers the single calls it wraps (create, read, delete,
patch, events). Log streams and the trigger's own reads are retried here with the same rules:
429 honours ``Retry-After``; 5xx, dropped or timed-out connections back off
exponentially with jitter (410 Gone means "list again", so it is retried too); everything
else is a real failure.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({410, 429, 500, 502, 503, 504})
BASE_DELAY = 0.5
MAX_DELAY = 15.0
STREAM_MAX_DELAY = 2.0
DEFAULT_ATTEMPTS = 8

log = logging.getLogger(__name__)


def api_status(error: BaseException) -> int | None:
    """The HTTP status of a sync or async client ``ApiException``, else None."""
    status = getattr(error, "status", None)
    return status if isinstance(status, int) else None


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is worth another try: throttling, server errors, lost connections."""
    import aiohttp
    import urllib3.exceptions
    from kubernetes.client.exceptions import ApiException
    from kubernetes_asyncio.client.exceptions import ApiException as AsyncApiException

    if isinstance(error, (ApiException, AsyncApiException)):
        return error.status in TRANSIENT_STATUS
    transient_types: tuple[type[BaseException], ...] = (
        urllib3.exceptions.HTTPError,
        aiohttp.ClientError,
        ConnectionError,
        TimeoutError,
        asyncio.TimeoutError,
    )
    if isinstance(error, transient_types):
        return True
    from http.client import HTTPException

    return isinstance(error, HTTPException)


def retry_after(error: BaseException) -> float | None:
    """Seconds asked for by a 429's ``Retry-After`` header (numeric form), if any."""
    if api_status(error) != 429:
        return None
    headers = getattr(error, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return min(float(value), 60.0) if value is not None else None
    except (TypeError, ValueError):
        return None


def backoff_delay(attempt: int, error: BaseException | None = None) -> float:
    """Wait before try ``attempt + 1`` (attempt counts from 0)."""
    asked = retry_after(error) if error is not None else None
    if asked is not None:
        return asked
    delay = min(MAX_DELAY, BASE_DELAY * (2**attempt))
    return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security


def stream_delay(attempt: int, error: BaseException | None = None) -> float:
    """Wait before reopening a broken log stream: short, since a reconnect is cheap and only
    re-reads a few seconds of log; ``Retry-After`` is still honoured."""
    asked = retry_after(error) if error is not None else None
    if asked is not None:
        return asked
    return min(STREAM_MAX_DELAY, 0.25 * (2**attempt)) * (0.5 + random.random() / 2)  # noqa: S311


def describe(error: BaseException) -> str:
    status = api_status(error)
    if status is not None:
        reason = getattr(error, "reason", "") or ""
        return f"HTTP {status} {reason}".strip()
    return f"{type(error).__name__}: {error}"[:200]


def call_with_retry(
    func: Callable[[], T],
    what: str,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    logger: Any = log,
) -> T:
    """Call ``func``; retry transient failures with backoff, re-raise the last one."""
    for attempt in range(attempts):
        try:
            return func()
        except Exception as error:
            if attempt + 1 >= attempts or not is_transient(error):
                raise
            delay = backoff_delay(attempt, error)
            logger.warning(
                "transient error on %s (%s); retry %d/%d in %.1fs",
                what,
                describe(error),
                attempt + 1,
                attempts - 1,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


async def acall_with_retry(
    func: Callable[[], Awaitable[T]],
    what: str,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    logger: Any = log,
) -> T:
    """Async :func:`call_with_retry`."""
    for attempt in range(attempts):
        try:
            return await func()
        except Exception as error:
            if attempt + 1 >= attempts or not is_transient(error):
                raise
            delay = backoff_delay(attempt, error)
            logger.warning(
                "transient error on %s (%s); retry %d/%d in %.1fs",
                what,
                describe(error),
                attempt + 1,
                attempts - 1,
                delay,
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
