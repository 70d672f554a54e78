"""Headers and JSON body of a webhook call to a :class:`PushEvent`, refusing anything malformed.

Which source sent a call is told by its event header (``X-GitHub-Event``, ``X-Gitlab-Event`` or
``X-Gitee-Event``); exactly one must be present. Push payloads of the three sources share the
fields this module reads: ``ref``, ``before``, ``after``, optional ``deleted``, and the clone
URLs under ``repository`` (GitHub, Gitee) or ``project`` (GitLab, Gitee).

The delivery id that makes a redelivery recognisable comes from ``X-GitHub-Delivery`` (GitHub),
``Idempotency-Key`` or else ``X-Gitlab-Event-UUID`` (GitLab; the former survives GitLab's
retries), and for Gitee, which sends no delivery header, from a digest of the repository, ref and
the before/after commits, which a redelivery repeats.

Every refusal is a :class:`PayloadError` naming the header or field and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from operators.webhook.repositories import normalize_repository_url

Source = Literal["github", "gitlab", "gitee"]
EventKind = Literal["push", "ping", "other"]

SOURCES: tuple[Source, ...] = ("github", "gitlab", "gitee")
EVENT_HEADERS: Mapping[Source, str] = {
    "github": "x-github-event",
    "gitlab": "x-gitlab-event",
    "gitee": "x-gitee-event",
}
ZERO_COMMIT = "0" * 40
MAX_REF_LENGTH = 255
MAX_URLS = 16

_COMMIT = re.compile(r"[0-9a-f]{40}")
_DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_REPOSITORY_OBJECTS = ("repository", "project")
_URL_FIELDS = (
    "clone_url",
    "ssh_url",
    "git_url",
    "git_http_url",
    "git_ssh_url",
    "http_url",
    "html_url",
    "web_url",
    "homepage",
    "url",
)
_NAME_FIELDS = (("repository", "full_name"), ("project", "path_with_namespace"))


class PayloadError(ValueError):
    """A header or payload field the webhook refuses.

    :param field: the header or JSON field at fault, e.g. ``after`` or ``X-GitHub-Delivery``.
    :param message: what is wrong and what is expected.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class PushEvent:
    """One branch or tag push, as far as the platform cares."""

    source: Source
    delivery_id: str
    ref: str
    before: str
    after: str
    deleted: bool
    repository: str
    repository_urls: tuple[str, ...]
    pusher: str

    @property
    def branch(self) -> str | None:
        """The pushed branch name, or None for a tag or another kind of ref."""
        prefix = "refs/heads/"
        return self.ref[len(prefix) :] if self.ref.startswith(prefix) else None


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers with lower-case names, the way the parsers here look them up."""
    return {name.lower(): value for name, value in headers.items()}


def detect_source(headers: Mapping[str, str]) -> tuple[Source, str]:
    """Return the source and its event name from the lower-cased ``headers``."""
    present = [source for source in SOURCES if EVENT_HEADERS[source] in headers]
    if not present:
        raise PayloadError(
            "headers",
            "no X-GitHub-Event, X-Gitlab-Event or X-Gitee-Event header; not a git webhook",
        )
    if len(present) > 1:
        raise PayloadError("headers", f"event headers of several sources at once: {present}")
    source = present[0]
    return source, headers[EVENT_HEADERS[source]].strip()


def event_kind(source: Source, event: str) -> EventKind:
    """Whether ``event`` is a push, GitHub's ping, or something the webhook ignores."""
    if source == "github":
        return "push" if event == "push" else "ping" if event == "ping" else "other"
    return "push" if event == "Push Hook" else "other"


def decode_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; raise :class:`PayloadError` for anything else."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise PayloadError("body", "not UTF-8 text; send the JSON payload") from None
    except RecursionError:
        raise PayloadError("body", "JSON nested too deeply") from None
    except ValueError as err:
        raise PayloadError("body", f"not valid JSON ({_short(str(err))})") from None
    if not isinstance(data, dict):
        raise PayloadError("body", f"a JSON object is expected, got {type(data).__name__}")
    return data


def parse_push(source: Source, headers: Mapping[str, str], data: Mapping[str, Any]) -> PushEvent:
    """Read a push event of ``source`` from lower-cased ``headers`` and the decoded body."""
    ref = _string(data, "ref", max_length=MAX_REF_LENGTH)
    if not ref.startswith("refs/"):
        raise PayloadError("ref", f"{_short(ref)!r} is not a full ref such as refs/heads/main")
    after = _commit(data, "after")
    before = _commit(data, "before") if data.get("before") is not None else ZERO_COMMIT
    deleted_flag = data.get("deleted", False)
    if not isinstance(deleted_flag, bool):
        raise PayloadError("deleted", "must be true or false")
    urls = _repository_urls(data)
    repository = _repository_name(data) or urls[0]
    deleted = deleted_flag or after == ZERO_COMMIT
    delivery_id = _delivery_id(source, headers, urls, ref, before, after)
    return PushEvent(
        source=source,
        delivery_id=delivery_id,
        ref=ref,
        before=before,
        after=after,
        deleted=deleted,
        repository=repository,
        repository_urls=urls,
        pusher=_pusher(data),
    )


def _delivery_id(
    source: Source,
    headers: Mapping[str, str],
    urls: tuple[str, ...],
    ref: str,
    before: str,
    after: str,
) -> str:
    if source == "gitee":
        keys = sorted({key for url in urls if (key := normalize_repository_url(url))})
        digest = hashlib.sha256("|".join([*keys, ref, before, after]).encode()).hexdigest()
        return f"push-{digest[:40]}"
    names = (
        ("x-github-delivery",) if source == "github" else ("idempotency-key", "x-gitlab-event-uuid")
    )
    for name in names:
        value = headers.get(name, "").strip()
        if value:
            if not _DELIVERY_ID.fullmatch(value):
                raise PayloadError(
                    _header_title(name),
                    "must be 1-100 letters, digits, '_' or '-' (a delivery GUID)",
                )
            return value
    raise PayloadError(
        " or ".join(_header_title(name) for name in names),
        "missing; it identifies the delivery so a redelivery triggers nothing new",
    )


def _header_title(name: str) -> str:
    titles = {
        "x-github-delivery": "X-GitHub-Delivery",
        "idempotency-key": "Idempotency-Key",
        "x-gitlab-event-uuid": "X-Gitlab-Event-UUID",
    }
    return titles.get(name, name)


def _string(data: Mapping[str, Any], field: str, *, max_length: int) -> str:
    value = data.get(field)
    if value is None:
        raise PayloadError(field, "missing")
    if not isinstance(value, str):
        raise PayloadError(field, f"must be a string, got {type(value).__name__}")
    if not value or len(value) > max_length:
        raise PayloadError(field, f"must be 1 to {max_length} characters")
    return value


def _commit(data: Mapping[str, Any], field: str) -> str:
    value = _string(data, field, max_length=40)
    if not _COMMIT.fullmatch(value):
        raise PayloadError(field, f"{_short(value)!r} is not a 40-character lower-case commit id")
    return value


def _repository_urls(data: Mapping[str, Any]) -> tuple[str, ...]:
    objects = [(name, data.get(name)) for name in _REPOSITORY_OBJECTS if data.get(name) is not None]
    if not objects:
        raise PayloadError("repository", "missing; a push payload names its repository")
    urls: list[str] = []
    for name, value in objects:
        if not isinstance(value, dict):
            raise PayloadError(name, f"must be an object, got {type(value).__name__}")
        for field in _URL_FIELDS:
            url = value.get(field)
            if url is None:
                continue
            if not isinstance(url, str) or len(url) > 2048:
                raise PayloadError(
                    f"{name}.{field}", "must be a URL string of at most 2048 characters"
                )
            if url and url not in urls:
                urls.append(url)
    if not urls:
        raise PayloadError(
            "repository", "has no clone URL (clone_url, git_http_url, git_ssh_url ...)"
        )
    return tuple(urls[:MAX_URLS])


def _repository_name(data: Mapping[str, Any]) -> str | None:
    for outer, inner in _NAME_FIELDS:
        holder = data.get(outer)
        value = holder.get(inner) if isinstance(holder, dict) else None
        if isinstance(value, str) and value:
            return _short(value, 200)
    return None


def _pusher(data: Mapping[str, Any]) -> str:
    pusher = data.get("pusher")
    candidates = [
        pusher.get("name") if isinstance(pusher, dict) else None,
        data.get("user_username"),
        data.get("user_name"),
    ]
    for value in candidates:
        if isinstance(value, str) and value:
            return _short(value, 100)
    return ""


def _short(text: str, limit: int = 80) -> str:
    printable = "".join(ch if ch.isprintable() else "?" for ch in text)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."
