"""Shared DAG params and the input rules behind them.

Every entry point (trigger form, REST API, schedules, the Git webhook) goes through the same
JSON-Schema params, so a bad value is refused with a 400 that names the field before anything
runs. The patterns here are also used by operators as a second line of defence.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Param

# A full commit id, or a ref name made only of characters no shell, git option parser or URL
# treats specially: no leading '-', no '..', no '//', no '@{', no trailing '/', '.' or '.lock'.
# "(?![\s\S]*\n)" refuses a trailing newline, which "$" would otherwise let through in Python.
GIT_REF_PATTERN = (
    r"^(?![\s\S]*\n)(?:[0-9a-f]{40}"
    r"|(?!.*\.\.)(?!.*//)(?!.*@\{)(?!.*\.lock$)(?!.*[/.]$)[A-Za-z0-9][A-Za-z0-9._/-]{0,199})$"
)
GIT_REF_HELP = (
    "a 40-character commit id or a branch/tag name of letters, digits and . _ / - "
    "(no leading '-', no '..', at most 200 characters), e.g. main or release/1.4"
)

# registry[:port]/path@sha256:<64 hex>: releases are always pinned by digest.
IMAGE_REF_PATTERN = (
    r"^(?![\s\S]*\n)[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]{1,5})?"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+@sha256:[a-f0-9]{64}$"
)
IMAGE_REF_HELP = "an image reference pinned by digest: registry/repository@sha256:<64 hex digits>"

_GIT_REF = re.compile(GIT_REF_PATTERN)
_IMAGE_REF = re.compile(IMAGE_REF_PATTERN)


class InputError(ValueError):
    """A value from a user or another system that the platform refuses."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}: {shown} is not valid; expected {expected}")


def check_git_ref(value: object, field: str = "git_ref") -> str:
    """Return ``value`` if it is a safe git ref, else raise :class:`InputError`."""
    if not isinstance(value, str) or not _GIT_REF.fullmatch(value):
        raise InputError(field, value, GIT_REF_HELP)
    return value


def check_image_ref(value: object, field: str = "image") -> str:
    """Return ``value`` if it is an image reference pinned by digest, else raise."""
    if not isinstance(value, str) or not _IMAGE_REF.fullmatch(value):
        raise InputError(field, value, IMAGE_REF_HELP)
    return value


def service_param(default: str | None = None) -> Param:
    """The ``service`` param: one of the catalog's services; required unless given a default.

    Without a default a trigger that leaves ``service`` out is refused with a 400 naming it.
    """
    from airflow.sdk import Param

    from include.catalog import load_catalog

    schema: dict[str, Any] = {
        "type": "string",
        "enum": load_catalog().service_names,
        "title": "Service",
        "description": "The service to work on, by its name in the service catalog (include/catalog.yaml).",
    }
    if default is not None:
        return Param(default, **schema)
    return Param(**schema)


def git_ref_param(default: str | None = None) -> Param:
    """The ``git_ref`` param: a commit id or a safe branch/tag name; required unless given a default."""
    from airflow.sdk import Param

    schema: dict[str, Any] = {
        "type": "string",
        "pattern": GIT_REF_PATTERN,
        "minLength": 1,
        "maxLength": 200,
        "title": "Git ref",
        "description": f"What to check out: {GIT_REF_HELP}.",
    }
    if default is not None:
        return Param(default, **schema)
    return Param(**schema)


def image_param() -> Param:
    """The ``image`` param of a release: a digest-pinned image reference."""
    from airflow.sdk import Param

    return Param(
        type="string",
        pattern=IMAGE_REF_PATTERN,
        maxLength=512,
        title="Image",
        description=f"The image to release: {IMAGE_REF_HELP}. It must have passed build, tests and the quality gate.",
    )


def describe(params: dict[str, Any]) -> str:
    """A one-line ``key=value`` rendering of params for log lines."""
    return " ".join(f"{key}={value}" for key, value in sorted(params.items()))
