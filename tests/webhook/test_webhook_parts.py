"""The webhook's parts on their own: signatures, URL matching, payload parsing and routing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from include.catalog import load_catalog
from operators.webhook.payloads import (
    PayloadError,
    decode_json_object,
    detect_source,
    lower_headers,
    parse_push,
)
from operators.webhook.repositories import RepositoryIndex, normalize_repository_url
from operators.webhook.routing import is_release_branch, plan_push
from operators.webhook.signatures import (
    SignatureError,
    gitee_signature,
    github_signature,
    verify_gitee,
    verify_github,
    verify_gitlab,
)
from tests.webhook.pushes import HELLO_REPO, ZERO, commit, push_payload, signed

SECRET = "It's a Secret to Everybody"


def test_github_signature_matches_githubs_published_example() -> None:
    # The example from GitHub's documentation on validating webhook deliveries.
    assert github_signature(SECRET, b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )
    verify_github(SECRET, b"Hello, World!", github_signature(SECRET, b"Hello, World!").upper())


@pytest.mark.parametrize(
    "header",
    [
        "",
        None,
        "sha256=",
        "sha1=abc",
        "sha256=" + "0" * 64,
        "sha256=é" * 3,
        "\x00",
        "sha256=\udc80",
    ],
)
def test_github_signature_refusals_never_raise_anything_else(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify_github(SECRET, b"{}", header)


def test_gitlab_token_is_compared_whole() -> None:
    verify_gitlab(SECRET, SECRET)
    for token in (SECRET[:-1], SECRET + " ", "ä" + SECRET, None, ""):
        with pytest.raises(SignatureError):
            verify_gitlab(SECRET, token)


def test_gitee_signature_is_the_documented_algorithm() -> None:
    timestamp = "1576754827988"
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert gitee_signature(SECRET, timestamp) == expected
    now = 1576754827.988
    verify_gitee(SECRET, expected, timestamp, now=now)
    verify_gitee(SECRET, expected.replace("+", "%2B").replace("=", "%3D"), timestamp, now=now)
    verify_gitee(SECRET, SECRET, None, now=now)
    with pytest.raises(SignatureError, match="seconds away"):
        verify_gitee(SECRET, expected, timestamp, now=now + 3601)
    for bad_ts in ("", "abc", "-1", "1" * 40, "١٢٣"):
        with pytest.raises(SignatureError):
            verify_gitee(SECRET, expected, bad_ts, now=now)


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://git.example.com/team/app.git", "git.example.com/team/app"),
        ("https://user:token@git.example.com:8443/team/app/", "git.example.com/team/app"),
        ("ssh://git@git.example.com:2222/team/app.git", "git.example.com/team/app"),
        ("git@git.example.com:team/app.git", "git.example.com/team/app"),
        ("git@GIT.example.com:Team/App", "git.example.com/team/app"),
        ("git://git.example.com/team/app.git/", "git.example.com/team/app"),
        ("file:///srv/git/app.git", "/srv/git/app"),
        ("https://git.example.com/team/app.git.git", "git.example.com/team/app"),
        ("ftp://git.example.com/team/app", None),
        ("team/app", None),
        ("https:///team/app", None),
        ("https://git.example.com/", None),
        ("https://git.example.com/team/ app", None),
        ("", None),
        ("x" * 3000, None),
        ("http://[::1/x", None),
    ],
)
def test_repository_urls_normalize_to_host_and_path(url: str, key: str | None) -> None:
    assert normalize_repository_url(url) == key


def test_catalog_index_matches_every_spelling_and_nothing_else(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SRE_GIT_BASE", "https://git.example.com/team")
    index = RepositoryIndex.from_catalog(load_catalog())
    assert index.match(["git@git.example.com:team/order-service.git"]) == ("order-service",)
    assert index.match(["https://git.example.com/TEAM/Hello-Api"]) == ("hello-api",)
    assert index.match(["https://git.example.com/team/hello-api-fork"]) == ()
    assert index.match(["https://evil.example.com/team/hello-api"]) == ()


def test_source_is_told_by_exactly_one_event_header() -> None:
    assert detect_source(lower_headers({"X-GitHub-Event": "push"})) == ("github", "push")
    assert detect_source(lower_headers({"X-Gitee-Event": "Push Hook"})) == ("gitee", "Push Hook")
    with pytest.raises(PayloadError):
        detect_source({})
    with pytest.raises(PayloadError, match="several"):
        detect_source(lower_headers({"X-GitHub-Event": "push", "X-Gitlab-Event": "Push Hook"}))


@pytest.mark.parametrize("source", ["github", "gitlab", "gitee"])
def test_push_payloads_of_each_source_parse_alike(source: str) -> None:
    headers, body = signed(source, push_payload(source, ref="refs/heads/release/1.2"))
    event = parse_push(source, lower_headers(headers), decode_json_object(body))
    assert event.branch == "release/1.2"
    assert event.after == commit(f"{source}{HELLO_REPO}refs/heads/release/1.2")
    assert HELLO_REPO in event.repository_urls
    assert not event.deleted
    if source == "gitlab":
        assert event.delivery_id == headers["Idempotency-Key"]
    if source == "gitee":
        assert event.delivery_id.startswith("push-")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"after": "ABCDEF" + "0" * 34}, "after"),
        ({"after": "a" * 39}, "after"),
        ({"after": 12}, "after"),
        ({"ref": "main"}, "ref"),
        ({"ref": ["refs/heads/main"]}, "ref"),
        ({"ref": "refs/heads/" + "x" * 300}, "ref"),
        ({"deleted": "no"}, "deleted"),
        ({"repository": "https://x/y.git"}, "repository"),
        ({"repository": {"clone_url": 5}}, "repository.clone_url"),
        ({"repository": {"full_name": "x"}}, "repository"),
        ({"repository": None}, "repository"),
    ],
)
def test_bad_fields_are_named(change: dict, field: str) -> None:
    payload = push_payload("github") | change
    headers, body = signed("github", payload)
    with pytest.raises(PayloadError) as caught:
        parse_push("github", lower_headers(headers), decode_json_object(body))
    assert caught.value.field == field


def test_delivery_ids_that_cannot_be_part_of_a_run_id_are_refused() -> None:
    for delivery in ("../../x", "a b", "a" * 101, "x:y", "-abc", "a..b"):
        headers, body = signed("github", push_payload("github"), delivery=delivery)
        with pytest.raises(PayloadError, match="X-GitHub-Delivery"):
            parse_push("github", lower_headers(headers), decode_json_object(body))


def test_release_branch_globs_and_the_plan() -> None:
    assert is_release_branch("release/1.4", ["main", "release/*"])
    assert is_release_branch("main", ["main", "release/*"])
    assert not is_release_branch("Main", ["main"])
    assert not is_release_branch("hotfix/release/1", ["release/*"])
    headers, body = signed(
        "github", push_payload("github", ref="refs/heads/release/3"), delivery="d-1"
    )
    event = parse_push("github", lower_headers(headers), json.loads(body))
    plan = plan_push(event, "hello-api", ["release/*"])
    assert plan.dag_id == "delivery_pipeline"
    assert plan.run_id == "webhook__github__hello-api__d-1"
    assert plan.conf == {"service": "hello-api", "git_ref": event.after}
    assert plan_push(event, "hello-api", []).dag_id == "ci_build"


def test_deleted_pushes_are_marked_deleted() -> None:
    for payload in (push_payload("github", after=ZERO), push_payload("gitee", deleted=True)):
        source = "github" if "created" in payload and "hook_name" not in payload else "gitee"
        headers, body = signed(source, payload)
        assert parse_push(source, lower_headers(headers), json.loads(body)).deleted
