"""Signature and token checks for each webhook source, all in constant time.

- GitHub signs the raw body: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``.
- GitLab sends the secret itself: ``X-Gitlab-Token: <secret>``.
- Gitee sends either the password itself in ``X-Gitee-Token`` or, in signature mode, the
  base64 HMAC-SHA256 of ``"<X-Gitee-Timestamp>\\n<secret>"`` keyed with the secret. The
  timestamp is in milliseconds and must lie within :data:`GITEE_MAX_SKEW_SECONDS` of now. Gitee's
  signature does not cover the body: it proves the sender knows the secret, nothing more.

Every comparison goes through :func:`hmac.compare_digest` on bytes, so neither the length of a
matching prefix nor non-ASCII header values change the time taken or raise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import unquote

GITEE_MAX_SKEW_SECONDS = 3600


class SignatureError(Exception):
    """The request is not proven to come from the configured source.

    :param message: what is wrong, safe to return to the caller (never contains a secret).
    :param missing: True when the proof is absent rather than wrong.
    """

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def _same(left: str | bytes, right: str | bytes) -> bool:
    a = left.encode("utf-8", "surrogatepass") if isinstance(left, str) else left
    b = right.encode("utf-8", "surrogatepass") if isinstance(right, str) else right
    return hmac.compare_digest(a, b)


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def gitee_signature(secret: str, timestamp: str) -> str:
    """The ``X-Gitee-Token`` value Gitee sends in signature mode for ``timestamp``."""
    message = f"{timestamp}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_github(secret: str, body: bytes, signature: str | None) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is GitHub's HMAC of ``body``."""
    if not signature:
        raise SignatureError("missing X-Hub-Signature-256 header", missing=True)
    if not _same(github_signature(secret, body), signature.strip().lower()):
        raise SignatureError("X-Hub-Signature-256 does not match the request body")


def verify_gitlab(secret: str, token: str | None) -> None:
    """Raise :class:`SignatureError` unless ``token`` is the configured secret."""
    if not token:
        raise SignatureError("missing X-Gitlab-Token header", missing=True)
    if not _same(secret, token):
        raise SignatureError("X-Gitlab-Token does not match the configured secret")


def verify_gitee(
    secret: str, token: str | None, timestamp: str | None, *, now: float | None = None
) -> None:
    """Raise :class:`SignatureError` unless ``token`` is Gitee's password or signature.

    :param secret: the configured password or signing key.
    :param token: the ``X-Gitee-Token`` header.
    :param timestamp: the ``X-Gitee-Timestamp`` header (milliseconds), needed in signature mode.
    :param now: the current time in seconds, for tests.
    """
    if not token:
        raise SignatureError("missing X-Gitee-Token header", missing=True)
    if _same(secret, token):
        return
    if not timestamp:
        raise SignatureError("X-Gitee-Token does not match and X-Gitee-Timestamp is missing")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 16):
        raise SignatureError("X-Gitee-Timestamp must be milliseconds since the epoch")
    current = time.time() if now is None else now
    if abs(current - int(timestamp) / 1000) > GITEE_MAX_SKEW_SECONDS:
        raise SignatureError(
            f"X-Gitee-Timestamp is more than {GITEE_MAX_SKEW_SECONDS} seconds away from now"
        )
    if not _same(gitee_signature(secret, timestamp), unquote(token.strip())):
        raise SignatureError("X-Gitee-Token does not match the configured secret")
