"""Match a pushed repository to catalog services by normalized URL.

The same repository is spelled many ways: ``https://git.example.com/team/app.git``,
``ssh://git@git.example.com:2222/team/app``, ``git@git.example.com:team/app.git``,
``git://git.example.com/Team/App``. :func:`normalize_repository_url` reduces each to
``git.example.com/team/app``: scheme, user, password and port dropped, ``.git`` and trailing
slashes removed, lower-cased. Local ``file://`` URLs keep their path (``/srv/git/app``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from include.catalog import Catalog

MAX_URL_LENGTH = 2048

# user@host:path (scp-like syntax), as long as it is not a URL with a scheme.
_SCP_LIKE = re.compile(r"^(?:[^@/\s]+@)?(?P<host>[^:/\s]+):(?P<path>(?!//)[^\s]+)$")
_SCHEMES = frozenset({"http", "https", "ssh", "git", "git+ssh", "ssh+git", "file"})


def normalize_repository_url(url: str) -> str | None:
    """Return the ``host/path`` key of a git URL, or None when ``url`` is not one."""
    text = url.strip()
    if not text or len(text) > MAX_URL_LENGTH or any(ch.isspace() for ch in text):
        return None
    if "://" in text:
        try:
            parts = urlsplit(text)
            host = parts.hostname or ""
        except ValueError:
            return None
        if parts.scheme.lower() not in _SCHEMES:
            return None
        path = parts.path
        if parts.scheme.lower() != "file" and not host:
            return None
    else:
        match = _SCP_LIKE.match(text)
        if match is None:
            return None
        host, path = match.group("host"), match.group("path")
    path = path.strip("/")
    while path.lower().endswith(".git"):
        path = path[: -len(".git")].rstrip("/")
    if not path:
        return None
    return f"{host.lower()}/{path.lower()}"


@dataclass(frozen=True)
class RepositoryIndex:
    """Catalog services by normalized repository URL."""

    services_by_key: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> RepositoryIndex:
        index: dict[str, list[str]] = {}
        for service in catalog:
            key = normalize_repository_url(service.repository)
            if key is not None:
                index.setdefault(key, []).append(service.name)
        return cls({key: tuple(sorted(names)) for key, names in index.items()})

    def match(self, urls: Iterable[str]) -> tuple[str, ...]:
        """Names of the services whose repository is any of ``urls``, sorted, no duplicates."""
        found: set[str] = set()
        for url in urls:
            key = normalize_repository_url(url)
            if key is not None:
                found.update(self.services_by_key.get(key, ()))
        return tuple(sorted(found))
