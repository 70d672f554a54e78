"""Settings, read from the environment once at start-up."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hello_api.greetings import SUPPORTED_LANGUAGES

ENVIRONMENTS = ("development", "test", "staging", "production")
# The build writes this file next to the package (see ci/build.sh and the Dockerfile).
DEFAULT_BUILD_INFO = Path(__file__).resolve().parent.parent / "BUILD_INFO.json"


class ConfigError(ValueError):
    """A setting the service cannot start with."""


@dataclass(frozen=True)
class Settings:
    """What the service needs to know about where it runs."""

    host: str = "127.0.0.1"
    port: int = 8080
    environment: str = "development"
    site_name: str = ""
    default_language: str = "en"
    build_info_path: Path = DEFAULT_BUILD_INFO

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the settings from ``env``; a value the service cannot bind with is an error."""
        port_text = env.get("PORT", "8080").strip()
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(f"PORT must be a number, got {port_text!r}") from None
        if not 0 <= port <= 65535:
            raise ConfigError(f"PORT must be between 0 and 65535, got {port}")
        return cls(
            host=env.get("HOST", "127.0.0.1").strip() or "127.0.0.1",
            port=port,
            environment=env.get("ENVIRONMENT", "development").strip().lower(),
            site_name=env.get("SITE_NAME", "").strip(),
            default_language=env.get("DEFAULT_LANGUAGE", "en").strip().lower(),
            build_info_path=Path(env.get("BUILD_INFO_FILE") or DEFAULT_BUILD_INFO),
        )

    @property
    def served_by(self) -> str:
        """The value of the ``X-Served-By`` header: the site, else this host."""
        return self.site_name or socket.gethostname()

    def problems(self) -> list[str]:
        """Why the service must not take traffic with these settings; empty when it may."""
        found = []
        if self.environment not in ENVIRONMENTS:
            found.append(
                f"ENVIRONMENT must be one of {', '.join(ENVIRONMENTS)}, got {self.environment!r}"
            )
        if self.default_language not in SUPPORTED_LANGUAGES:
            supported = ", ".join(sorted(SUPPORTED_LANGUAGES))
            found.append(
                f"DEFAULT_LANGUAGE must be one of {supported}, got {self.default_language!r}"
            )
        return found
