"""Hypothesis strategies for bad input: hostile strings, wrong JSON types, broken payloads."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import strategies as st

from include.catalog import load_catalog
from include.params import GIT_REF_PATTERN, IMAGE_REF_PATTERN

SERVICES = tuple(load_catalog().service_names)
_GIT_REF = re.compile(GIT_REF_PATTERN)
_IMAGE = re.compile(IMAGE_REF_PATTERN)

# Pieces an attacker strings together: shell, git option and path tricks, control characters.
HOSTILE_PIECES = (
    "; rm -rf /",
    "$(id)",
    "`id`",
    "&& curl http://127.0.0.1/x",
    "| sh",
    "--upload-pack=x",
    "-c core.sshCommand=x",
    "--exec=id",
    "-",
    "..",
    "../../etc/passwd",
    "@{0}",
    "\n",
    "\r\n",
    "\x00",
    "\t",
    " ",
    "'",
    '"',
    "\\",
    "{{ 7*7 }}",
    "${IFS}",
    "~",
    "^",
    ":",
    "?",
    "*",
    "[",
    ".lock",
    "/",
    "//",
    "\u202e",
    "é",
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
non_string_json = json_values.filter(lambda value: not isinstance(value, str))


@st.composite
def hostile_strings(draw: st.DrawFn) -> str:
    """Text made of hostile pieces and arbitrary characters."""
    pieces = draw(
        st.lists(
            st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(max_size=8)), min_size=1, max_size=6
        )
    )
    return "".join(pieces)


def is_valid_git_ref(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 200 and bool(_GIT_REF.fullmatch(value))


bad_git_refs = st.one_of(
    hostile_strings().filter(lambda text: not is_valid_git_ref(text)),
    st.text(max_size=250).filter(lambda text: not is_valid_git_ref(text)),
    st.builds(lambda n: "a" * n, st.integers(201, 400)),
    non_string_json,
)


def is_valid_image(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 512 and bool(_IMAGE.fullmatch(value))


bad_images = st.one_of(
    hostile_strings().filter(lambda text: not is_valid_image(text)),
    st.builds(
        "registry.local:5000/{}@sha256:{}".format,
        hostile_strings(),
        st.text("0123456789abcdef", max_size=70),
    ).filter(lambda text: not is_valid_image(text)),
    st.just("registry.local:5000/hello-api:latest"),
    non_string_json,
)
bad_services = st.one_of(
    hostile_strings().filter(lambda text: text not in SERVICES),
    st.text(max_size=64).filter(lambda text: text not in SERVICES),
    st.sampled_from(SERVICES).map(str.upper),
    st.sampled_from(SERVICES).map(lambda name: name + "\n"),
    non_string_json,
)


def to_json(value: Any) -> bytes:
    return json.dumps(value).encode()
