"""Pod names and label values that Kubernetes accepts, whatever the task id looks like.

Airflow task ids may hold dots (task groups), underscores, 70+ characters and non-ASCII word
characters; run ids hold ``:`` and ``+``. Pod names must be DNS-1123 subdomain labels (lower
case alphanumerics and '-', at most 63 characters here, alphanumeric at both ends); label values
at most 63 characters of ``[A-Za-z0-9_.-]``, alphanumeric at both ends, or empty.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string

MAX_NAME = 63
MAX_LABEL_VALUE = 63
SUFFIX_LENGTH = 8
_ALPHABET = string.ascii_lowercase + string.digits
_NOT_NAME = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _short_hash(value: str, length: int = 9) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def name_part(value: str) -> str:
    """``value`` reduced to DNS-1123 characters (may be empty)."""
    return _NOT_NAME.sub("-", value.lower()).strip("-")


def pod_name(service: str, step: str, suffix: str | None = None) -> str:
    """``<service>-<step>-<random>``: a DNS-1123 label of at most 63 characters.

    :param service: the catalog service name.
    :param step: the step name (build, test, scan...).
    :param suffix: the random part; generated when not given.
    """
    suffix = suffix or "".join(secrets.choice(_ALPHABET) for _ in range(SUFFIX_LENGTH))
    parts = [part for part in (name_part(service), name_part(step)) if part]
    base = "-".join(parts) or "step"
    room = MAX_NAME - len(suffix) - 1
    if len(base) > room:
        base = base[: room - 10].rstrip("-") + "-" + _short_hash(f"{service}/{step}")
    return f"{base}-{suffix}"


def label_value(value: str) -> str:
    """A valid label value for ``value``; changed or long values get a hash of the original."""
    cleaned = _NOT_LABEL.sub("", value).strip("-_.")
    if cleaned == value and len(cleaned) <= MAX_LABEL_VALUE:
        return cleaned
    digest = _short_hash(value)
    room = MAX_LABEL_VALUE - len(digest) - 1
    head = cleaned[:room].rstrip("-_.")
    return f"{head}-{digest}" if head else digest
