"""Greetings in the languages the front end offers, and how the language is chosen."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

GREETINGS: dict[str, str] = {
    "en": "Hello, {name}!",
    "zh": "你好，{name}！",
    "es": "¡Hola, {name}!",
    "fr": "Bonjour, {name} !",
    "de": "Hallo, {name}!",
}
# Who is greeted when the request names nobody.
DEFAULT_NAMES: dict[str, str] = {
    "en": "world",
    "zh": "世界",
    "es": "mundo",
    "fr": "le monde",
    "de": "Welt",
}
SUPPORTED_LANGUAGES = frozenset(GREETINGS)
MAX_NAME_LENGTH = 40


@dataclass(frozen=True)
class Greeting:
    """One greeting as the API returns it."""

    message: str
    language: str
    name: str

    def as_dict(self) -> dict[str, str]:
        return {"message": self.message, "language": self.language, "name": self.name}


def clean_name(raw: str | None) -> str:
    """Trim a name, collapse inner whitespace, drop control characters, cap its length.

    The cap counts characters, not bytes, so a Chinese name is never cut inside a character.
    """
    if raw is None:
        return ""
    visible = "".join(ch for ch in raw if not unicodedata.category(ch).startswith("C"))
    collapsed = " ".join(visible.split())
    return collapsed[:MAX_NAME_LENGTH].rstrip()


def parse_accept_language(header: str | None) -> list[str]:
    """Primary language tags of an Accept-Language header, most preferred first.

    ``zh-CN,zh;q=0.9,en;q=0.8`` gives ``["zh", "en"]``. Entries with ``q=0`` or an unreadable
    quality are dropped; equal qualities keep the header's order.
    """
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for position, entry in enumerate(header.split(",")):
        tag, _, params = entry.partition(";")
        primary = tag.strip().lower().split("-")[0]
        if not primary or primary == "*":
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if not 0.0 < quality <= 1.0:
            continue
        ranked.append((-quality, position, primary))
    ordered: list[str] = []
    for _, _, primary in sorted(ranked):
        if primary not in ordered:
            ordered.append(primary)
    return ordered


def choose_language(requested: str | None, accept_language: str | None, default: str = "en") -> str:
    """The greeting language: an explicit ``lang`` first, then the browser's preference."""
    if requested:
        primary = requested.strip().lower().replace("_", "-").split("-")[0]
        if primary in GREETINGS:
            return primary
    for candidate in parse_accept_language(accept_language):
        if candidate in GREETINGS:
            return candidate
    return default


def greet(name: str | None, language: str) -> Greeting:
    """Greet ``name`` (or the language's default addressee) in ``language``."""
    assert language in GREETINGS, f"unsupported language {language!r}"
    cleaned = clean_name(name) or DEFAULT_NAMES[language]
    return Greeting(GREETINGS[language].format(name=cleaned), language, cleaned)
