"""The Git webhook through the real api-server: the plugin route, real DAG runs, real audit records."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from operators.webhook.signatures import gitee_signature, github_signature
from tests.api.harness import WEBHOOK_SECRETS, ApiServer, dag_runs, records_audit_events
from tests.webhook.pushes import ORDERS_REPO, PATH, ZERO, commit, push_payload, signed

SOURCES = ("github", "gitlab", "gitee")


def post(server: ApiServer, headers: dict[str, str], body: bytes):
    return server.client.post(PATH, content=body, headers=headers)


def audit_count() -> int:
    """How many audit events exist, as the newest event's id (ids only grow; the store is shared
    by the whole session, so counting a window of recent events would saturate)."""
    events = records_audit_events(1)
    return int(events[0].id) if events else 0


def last_audit():
    events = records_audit_events(1)
    assert events, "no audit record written"
    return events[0]


@pytest.mark.parametrize("source", SOURCES)
def test_push_to_release_branch_starts_the_delivery_pipeline(
    server: ApiServer, source: str
) -> None:
    after = commit(f"release-{source}")
    headers, body = signed(source, push_payload(source, ref="refs/heads/main", after=after))
    before = audit_count()
    answer = post(server, headers, body)
    assert answer.status_code == 201, answer.text
    (run,) = answer.json()["runs"]
    assert run["dag_id"] == "delivery_pipeline"
    assert run["service"] == "hello-api"
    assert run["dag_run_id"].startswith(f"webhook__{source}__hello-api__")
    runs = {r: conf for _, r, conf in dag_runs("delivery_pipeline")}
    assert runs[run["dag_run_id"]] == {"service": "hello-api", "git_ref": after}
    assert audit_count() == before + 1
    record = last_audit()
    assert (record.source, record.action) == ("webhook", "webhook.triggered")
    assert (record.dag_id, record.run_id, record.target) == (
        "delivery_pipeline",
        run["dag_run_id"],
        "hello-api",
    )
    assert record.detail["after"] == after
    assert WEBHOOK_SECRETS[source] not in json.dumps(record.detail)


@pytest.mark.parametrize(
    ("repo", "ref", "dag_id", "service"),
    [
        (None, "refs/heads/feature/greeting", "ci_build", "hello-api"),
        (ORDERS_REPO, "refs/heads/main", "ci_build", "order-service"),
        (ORDERS_REPO, "refs/heads/release/2.4", "delivery_pipeline", "order-service"),
    ],
)
def test_branch_decides_between_ci_and_release(
    server: ApiServer, repo: str | None, ref: str, dag_id: str, service: str
) -> None:
    payload = push_payload("github", ref=ref, **({"repo": repo} if repo else {}))
    answer = post(server, *signed("github", payload))
    assert answer.status_code == 201, answer.text
    (run,) = answer.json()["runs"]
    assert (run["dag_id"], run["service"]) == (dag_id, service)
    assert run["dag_run_id"] in {r for _, r, _ in dag_runs(dag_id)}


@pytest.mark.parametrize("source", ["github", "gitlab"])
def test_redelivery_starts_nothing_new(server: ApiServer, source: str) -> None:
    headers, body = signed(source, push_payload(source, ref="refs/heads/fix/redeliver"))
    first = post(server, headers, body)
    assert first.status_code == 201, first.text
    runs_after_first = dag_runs()
    second = post(server, headers, body)
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "duplicate"
    assert second.json()["runs"][0]["dag_run_id"] == first.json()["runs"][0]["dag_run_id"]
    assert dag_runs() == runs_after_first
    assert last_audit().action == "webhook.duplicate"


def test_gitee_redelivery_is_recognised_by_its_content(server: ApiServer) -> None:
    payload = push_payload("gitee", ref="refs/heads/fix/gitee-again")
    first = post(server, *signed("gitee", payload))
    assert first.status_code == 201, first.text
    time.sleep(0.002)
    again = post(server, *signed("gitee", payload))
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"


def test_concurrent_redeliveries_start_exactly_one_run(server: ApiServer) -> None:
    headers, body = signed("github", push_payload("github", ref="refs/heads/fix/race"))
    before = len(dag_runs("ci_build"))
    statuses: list[int] = []

    def deliver() -> None:
        statuses.append(post(server, headers, body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200, 200, 200, 201]
    assert len(dag_runs("ci_build")) == before + 1


@pytest.mark.parametrize("source", ["github", "gitee"])
def test_deleted_branch_starts_nothing(server: ApiServer, source: str) -> None:
    before = dag_runs()
    payload = push_payload(source, ref="refs/heads/main", after=ZERO, deleted=True)
    answer = post(server, *signed(source, payload))
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ignored",
        "reason": "deleted",
        "detail": "a deleted ref starts nothing",
    }
    assert dag_runs() == before
    assert last_audit().action == "webhook.ignored"


def test_gitlab_branch_deletion_starts_nothing(server: ApiServer) -> None:
    before = dag_runs()
    answer = post(server, *signed("gitlab", push_payload("gitlab", after=ZERO)))
    assert answer.json()["reason"] == "deleted"
    assert dag_runs() == before


def test_tag_pushes_pings_and_other_events_start_nothing(server: ApiServer) -> None:
    before = dag_runs()
    tag = post(server, *signed("github", push_payload("github", ref="refs/tags/v1.0")))
    assert (tag.status_code, tag.json()["reason"]) == (200, "not_a_branch")
    ping = post(server, *signed("github", {"zen": "Keep it simple."}, event="ping"))
    assert (ping.status_code, ping.json()["reason"]) == (200, "ping")
    merge = post(
        server, *signed("gitlab", {"object_kind": "merge_request"}, event="Merge Request Hook")
    )
    assert (merge.status_code, merge.json()["reason"]) == (200, "not_a_push")
    assert dag_runs() == before


def test_repository_is_matched_in_any_url_spelling(
    server: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRE_GIT_BASE", "https://git.example.com/team")
    for url in (
        "git@git.example.com:team/hello-api.git",
        "ssh://git@git.example.com:2222/team/hello-api",
        "https://GIT.example.com/Team/Hello-API/",
        "git://git.example.com/team/hello-api.git",
    ):
        payload = push_payload("github", repo=url, ref="refs/heads/spelling")
        answer = post(server, *signed("github", payload))
        assert answer.status_code == 201, (url, answer.text)
        assert answer.json()["runs"][0]["service"] == "hello-api"


def _refused(server: ApiServer, headers: dict[str, str], body: bytes, status: int, reason: str):
    before_runs = dag_runs()
    before_audit = audit_count()
    answer = post(server, headers, body)
    assert answer.status_code == status, answer.text
    found = answer.json()
    assert (found["status"], found["reason"]) == ("refused", reason)
    assert found["detail"]
    assert dag_runs() == before_runs
    assert audit_count() == before_audit + 1
    record = last_audit()
    assert (record.source, record.action) == ("webhook", "webhook.refused")
    assert record.detail["status"] == status
    return found


def test_unknown_repository_is_refused(server: ApiServer) -> None:
    payload = push_payload("github", repo="https://git.example.com/other/unknown.git")
    found = _refused(server, *signed("github", payload), 404, "unknown_repository")
    assert "other/unknown" in found["detail"]


@pytest.mark.parametrize("source", SOURCES)
def test_wrong_secret_is_refused(server: ApiServer, source: str) -> None:
    headers, body = signed(source, push_payload(source), secret="not-the-secret")
    _refused(server, headers, body, 403, "bad_signature")


@pytest.mark.parametrize(
    ("source", "header"),
    [("github", "X-Hub-Signature-256"), ("gitlab", "X-Gitlab-Token"), ("gitee", "X-Gitee-Token")],
)
def test_missing_signature_is_refused(server: ApiServer, source: str, header: str) -> None:
    headers, body = signed(source, push_payload(source))
    del headers[header]
    found = _refused(server, headers, body, 401, "bad_signature")
    assert header in found["detail"]


def test_github_body_changed_after_signing_is_refused(server: ApiServer) -> None:
    headers, body = signed("github", push_payload("github"))
    tampered = body.replace(b"refs/heads/main", b"refs/heads/evil")
    _refused(server, headers, tampered, 403, "bad_signature")


def test_gitee_plain_password_and_stale_signature(server: ApiServer) -> None:
    payload = push_payload("gitee", ref="refs/heads/fix/plain")
    headers, body = signed("gitee", payload)
    headers["X-Gitee-Token"] = WEBHOOK_SECRETS["gitee"]
    del headers["X-Gitee-Timestamp"]
    assert post(server, headers, body).status_code == 201
    stale = str(int((time.time() - 7200) * 1000))
    headers.update(
        {
            "X-Gitee-Timestamp": stale,
            "X-Gitee-Token": gitee_signature(WEBHOOK_SECRETS["gitee"], stale),
        }
    )
    _refused(server, headers, body, 403, "bad_signature")


def test_source_without_a_secret_is_refused(
    server: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_GIT_WEBHOOK_GITLAB")
    headers, body = signed("gitlab", push_payload("gitlab"))
    found = _refused(server, headers, body, 403, "not_configured")
    assert "gitlab" in found["detail"]
    monkeypatch.setenv("AIRFLOW_CONN_GIT_WEBHOOK_GITLAB", json.dumps({"conn_type": "generic"}))
    headers["X-Gitlab-Token"] = ""
    _refused(server, headers, body, 403, "not_configured")


def test_oversized_body_is_refused_before_it_is_read(server: ApiServer) -> None:
    payload = push_payload("github")
    payload["padding"] = "x" * (1024 * 1024)
    headers, body = signed("github", payload)
    _refused(server, headers, body, 413, "too_large")


def test_oversized_body_without_content_length_is_cut_off(server: ApiServer) -> None:
    headers, body = signed("github", push_payload("github") | {"padding": "x" * (1024 * 1024)})
    before = dag_runs()

    def chunks():
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    answer = server.client.post(PATH, content=chunks(), headers=headers)
    assert answer.status_code == 413
    assert dag_runs() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b"\xff\xfe{}", "body"),
        (b"[" * 100_000 + b"]" * 100_000, "body"),
        (json.dumps({"ref": "refs/heads/main", "repository": {}}).encode(), "after"),
        (json.dumps({"after": "a" * 40, "repository": {"clone_url": "x"}}).encode(), "ref"),
    ],
    ids=["not-json", "array", "not-utf8", "deeply-nested", "no-after", "no-ref"],
)
def test_malformed_payload_is_refused_naming_the_field(
    server: ApiServer, body: bytes, field: str
) -> None:
    headers, body = signed("github", body)
    found = _refused(server, headers, body, 400, "malformed")
    assert found["detail"].startswith(f"{field}:")


def test_unsafe_branch_name_is_refused(server: ApiServer) -> None:
    payload = push_payload("github", ref="refs/heads/-c core.sshCommand=x")
    found = _refused(server, *signed("github", payload), 400, "malformed")
    assert found["detail"].startswith("ref:")


def test_missing_delivery_id_and_unknown_source_are_refused(server: ApiServer) -> None:
    headers, body = signed("github", push_payload("github"))
    del headers["X-GitHub-Delivery"]
    assert "X-GitHub-Delivery" in _refused(server, headers, body, 400, "malformed")["detail"]
    _refused(server, {"Content-Type": "application/json"}, body, 400, "unknown_source")


def test_form_encoded_payload_is_refused(server: ApiServer) -> None:
    headers, body = signed("github", push_payload("github"))
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    _refused(server, headers, b"payload=" + body, 415, "unsupported_media_type")


def test_route_needs_no_airflow_login_but_auth_headers_do_not_replace_the_signature(
    server: ApiServer,
) -> None:
    headers, body = signed("github", push_payload("github"))
    headers["X-Hub-Signature-256"] = github_signature("guess", body)
    headers.update(server.auth("admin"))
    _refused(server, headers, body, 403, "bad_signature")
    assert os.environ["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
