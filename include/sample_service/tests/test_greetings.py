from __future__ import annotations

import pytest
from hello_api.greetings import (
    MAX_NAME_LENGTH,
    choose_language,
    clean_name,
    greet,
    parse_accept_language,
)


def test_greets_in_english_by_default() -> None:
    assert greet("Ada", "en").message == "Hello, Ada!"


def test_greets_in_chinese() -> None:
    greeting = greet("李雷", "zh")
    assert greeting.message == "你好，李雷！"
    assert greeting.as_dict() == {"message": "你好，李雷！", "language": "zh", "name": "李雷"}


@pytest.mark.parametrize(
    ("language", "message"),
    [("en", "Hello, world!"), ("zh", "你好，世界！"), ("de", "Hallo, Welt!")],
)
def test_missing_name_greets_the_default_addressee(language: str, message: str) -> None:
    assert greet(None, language).message == message
    assert greet("   ", language).message == message


def test_clean_name_trims_and_collapses_whitespace() -> None:
    assert clean_name("  Ada \t  Lovelace \n") == "Ada Lovelace"


def test_clean_name_drops_control_characters() -> None:
    assert clean_name("Ada\x00\x1b[31m\u200b") == "Ada[31m"


def test_clean_name_caps_length_in_characters() -> None:
    cleaned = clean_name("王" * 100)
    assert cleaned == "王" * MAX_NAME_LENGTH
    assert len(cleaned.encode("utf-8")) == 3 * MAX_NAME_LENGTH


def test_name_with_braces_is_not_a_template() -> None:
    assert greet("{name} {0}", "en").message == "Hello, {name} {0}!"


def test_accept_language_orders_by_quality() -> None:
    assert parse_accept_language("en;q=0.5, zh-CN, fr;q=0.8") == ["zh", "fr", "en"]


def test_accept_language_drops_zero_and_unreadable_qualities() -> None:
    assert parse_accept_language("de;q=0, es;q=abc, *;q=0.1, en;q=1") == ["en"]


@pytest.mark.parametrize("header", [None, "", " , ;q=1"])
def test_accept_language_without_languages(header: str | None) -> None:
    assert parse_accept_language(header) == []


@pytest.mark.parametrize(
    ("requested", "accept", "expected"),
    [
        ("zh_CN", "en", "zh"),
        ("FR", None, "fr"),
        ("xx", "pt, zh-TW;q=0.9", "zh"),
        (None, "pt, it", "en"),
        (None, None, "en"),
    ],
)
def test_choose_language(requested: str | None, accept: str | None, expected: str) -> None:
    assert choose_language(requested, accept) == expected


def test_choose_language_falls_back_to_the_configured_default() -> None:
    assert choose_language(None, "pt", default="de") == "de"
