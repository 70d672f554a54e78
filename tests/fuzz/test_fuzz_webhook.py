"""Fuzz the Git webhook: bad signatures, bad headers and broken payloads never start a run.

At least 1,000 generated bad calls go to ``POST /sre/webhooks/git`` through the api-server.
Each is wrong in at least one way the webhook must catch: no or a wrong signature, a missing or
malformed delivery id, a body that is not a JSON object, a push field of the wrong kind or with a
hostile value, an unknown repository, an oversized body. Every answer must be a 4xx (or a 200
"ignored"/"duplicate" for well-signed events that are not pushes), never a 5xx, and no DAG run may
appear, so nothing from the call ever reaches a pod command.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.harness import WEBHOOK_SECRETS, ApiServer, dag_runs
from tests.fuzz.strategies import hostile_strings, is_valid_git_ref, json_values, non_string_json
from tests.webhook.pushes import PATH, ZERO, commit, push_payload, signed

EXAMPLES = 1000
SOURCES = ("github", "gitlab", "gitee")
SIGNATURE_HEADERS = {
    "github": "X-Hub-Signature-256",
    "gitlab": "X-Gitlab-Token",
    "gitee": "X-Gitee-Token",
}
header_text = st.text(
    st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=80
)


def valid_push(draw: st.DrawFn, source: str) -> dict[str, Any]:
    ref = "refs/heads/" + draw(st.sampled_from(("main", "release/9.9", "feature/fuzz")))
    return push_payload(source, ref=ref, after=commit(str(draw(st.integers(0, 10**9)))))


@st.composite
def bad_signature(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    source = draw(st.sampled_from(SOURCES))
    headers, body = signed(source, valid_push(draw, source))
    name = SIGNATURE_HEADERS[source]
    # GitLab and Gitee tokens do not cover the body: only GitHub's signature can mismatch it.
    ways = ("drop", "random", "other_secret", *(("other_body",) if source == "github" else ()))
    how = draw(st.sampled_from(ways))
    if how == "drop":
        del headers[name]
        headers.pop("X-Gitee-Timestamp", None)
    elif how == "random":
        headers[name] = draw(header_text)
    elif how == "other_secret":
        other = draw(
            st.text(min_size=1, max_size=20).filter(lambda t: t != WEBHOOK_SECRETS[source])
        )
        headers[name] = signed(source, body, secret=other)[0][name]
    else:
        headers[name] = signed(source, body + b" ")[0][name]
    return headers, body


@st.composite
def bad_body(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    source = draw(st.sampled_from(SOURCES))
    kind = draw(st.sampled_from(("bytes", "json", "object")))
    if kind == "bytes":
        body = draw(st.binary(max_size=300))
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    else:
        junk = draw(st.dictionaries(st.text(max_size=12), json_values, max_size=6))
        body = json.dumps(junk).encode()
    return signed(source, body)


@st.composite
def bad_field(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    source = draw(st.sampled_from(SOURCES))
    payload = valid_push(draw, source)
    field = draw(st.sampled_from(("ref", "after", "before", "deleted", "repository", "branch")))
    if field == "ref":
        payload["ref"] = draw(
            st.one_of(
                non_string_json, hostile_strings().filter(lambda r: not r.startswith("refs/"))
            )
        )
    elif field == "branch":
        branch = draw(hostile_strings().filter(lambda b: not is_valid_git_ref(b)))
        payload["ref"] = "refs/heads/" + branch
    elif field == "after":
        payload["after"] = draw(
            st.one_of(non_string_json, hostile_strings()).filter(lambda a: a != ZERO)
        )
    elif field == "before":
        payload["before"] = draw(
            st.one_of(
                json_values.filter(lambda b: b is not None and not isinstance(b, str)),
                hostile_strings(),
            )
        )
    elif field == "deleted":
        payload["deleted"] = draw(
            json_values.filter(lambda d: not isinstance(d, bool) and d is not None)
        )
    else:
        url = draw(
            st.one_of(
                hostile_strings(),
                st.builds(
                    "https://git.example.com/{}/{}.git".format,
                    st.text(max_size=10),
                    st.text(max_size=10),
                ),
                non_string_json,
            )
        )
        key = "project" if source == "gitlab" else "repository"
        payload.pop("repository", None)
        payload.pop("project", None)
        payload[key] = draw(st.sampled_from(({"clone_url": url, "git_http_url": url}, url)))
    return signed(source, payload)


@st.composite
def bad_headers(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    source = draw(st.sampled_from(("github", "gitlab")))
    delivery = draw(
        st.one_of(hostile_strings(), header_text).filter(
            lambda d: d.strip() and not d.strip().replace("-", "").replace("_", "").isalnum()
        )
    )
    headers, body = signed(source, valid_push(draw, source))
    for name in ("X-GitHub-Delivery", "X-Gitlab-Event-UUID", "Idempotency-Key"):
        if name in headers:
            headers[name] = delivery
    how = draw(st.sampled_from(("delivery", "content_type", "two_sources", "no_source")))
    if how == "content_type":
        headers["Content-Type"] = draw(
            header_text.filter(lambda t: t.split(";")[0].strip().lower() != "application/json")
        )
    elif how == "two_sources":
        headers["X-Gitee-Event"] = "Push Hook"
    elif how == "no_source":
        headers = {k: v for k, v in headers.items() if not k.endswith("-Event")}
    return headers, body


@st.composite
def bad_calls(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    return draw(st.one_of(bad_signature(), bad_body(), bad_field(), bad_headers()))


def _encode(headers: dict[str, str]) -> dict[str, bytes]:
    return {name: value.encode("utf-8", "surrogatepass") for name, value in headers.items()}


@pytest.mark.timeout(300)
def test_bad_calls_are_refused_without_a_run(server: ApiServer) -> None:
    seen: list[int] = []
    baseline = dag_runs()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(bad_calls())
    def check(call: tuple[dict[str, str], bytes]) -> None:
        headers, body = call
        answer = server.client.post(PATH, content=body, headers=_encode(headers))
        seen.append(answer.status_code)
        assert answer.status_code < 500, answer.text
        found = answer.json()
        if answer.status_code == 200:
            assert found["status"] == "ignored", found
        else:
            assert 400 <= answer.status_code < 500, found
            assert found["status"] == "refused" and found["detail"], found
        assert dag_runs() == baseline, f"a run was started by {headers!r} {body[:200]!r}"

    check()
    assert len(seen) >= EXAMPLES
    assert {400, 401, 403, 404, 415} <= set(seen)
