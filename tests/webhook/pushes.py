"""Push payloads and signed requests the way GitHub, GitLab and Gitee send them."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from operators.webhook.signatures import gitee_signature, github_signature
from tests.api.harness import WEBHOOK_SECRETS

HELLO_REPO = "file:///srv/git/hello-api.git"
ORDERS_REPO = "file:///srv/git/order-service.git"
ZERO = "0" * 40
PATH = "/sre/webhooks/git"


def commit(seed: str) -> str:
    """A deterministic 40-hex commit id."""
    return (uuid.uuid5(uuid.NAMESPACE_URL, seed).hex * 2)[:40]


def push_payload(
    source: str,
    *,
    repo: str = HELLO_REPO,
    ref: str = "refs/heads/main",
    after: str | None = None,
    before: str = ZERO,
    deleted: bool | None = None,
) -> dict[str, Any]:
    """A push payload with the fields each source really sends (trimmed)."""
    after = after if after is not None else commit(f"{source}{repo}{ref}")
    common: dict[str, Any] = {"ref": ref, "before": before, "after": after}
    if source == "github":
        payload = {
            **common,
            "created": before == ZERO,
            "deleted": after == ZERO if deleted is None else deleted,
            "repository": {
                "full_name": "team/hello-api",
                "clone_url": repo,
                "html_url": repo.removesuffix(".git"),
            },
            "pusher": {"name": "alice", "email": "alice@example.com"},
            "commits": [{"id": after, "message": "Fix greeting"}],
        }
    elif source == "gitlab":
        payload = {
            "object_kind": "push",
            "event_name": "push",
            **common,
            "user_username": "bob",
            "project": {
                "path_with_namespace": "team/hello-api",
                "git_http_url": repo,
                "web_url": repo.removesuffix(".git"),
            },
            "repository": {"name": "hello-api", "url": repo, "git_http_url": repo},
            "commits": [{"id": after, "message": "Fix greeting"}],
        }
    else:
        payload = {
            "hook_name": "push_hooks",
            "password": "",
            **common,
            "created": before == ZERO,
            "deleted": after == ZERO if deleted is None else deleted,
            "repository": {"full_name": "team/hello-api", "clone_url": repo, "html_url": repo},
            "pusher": {"name": "carol"},
        }
    if deleted is not None and source != "gitlab":
        payload["deleted"] = deleted
    return payload


def signed(
    source: str,
    payload: dict[str, Any] | bytes,
    *,
    delivery: str | None = None,
    secret: str | None = None,
    event: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a correctly signed webhook call from ``source``."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    secret = secret if secret is not None else WEBHOOK_SECRETS[source]
    delivery = delivery or str(uuid.uuid4())
    headers = {"Content-Type": "application/json"}
    if source == "github":
        headers.update(
            {
                "X-GitHub-Event": event or "push",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": github_signature(secret, body),
                "User-Agent": "GitHub-Hookshot/abc123",
            }
        )
    elif source == "gitlab":
        headers.update(
            {
                "X-Gitlab-Event": event or "Push Hook",
                "X-Gitlab-Token": secret,
                "X-Gitlab-Event-UUID": delivery,
                "Idempotency-Key": delivery,
            }
        )
    else:
        timestamp = str(int(time.time() * 1000))
        headers.update(
            {
                "X-Gitee-Event": event or "Push Hook",
                "X-Gitee-Token": gitee_signature(secret, timestamp),
                "X-Gitee-Timestamp": timestamp,
                "User-Agent": "git-oschina-hook",
            }
        )
    return headers, body
