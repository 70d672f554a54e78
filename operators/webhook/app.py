"""The Git webhook endpoint, ``POST /webhooks/git``, as a FastAPI app.

``plugins/git_webhook.py`` mounts it on the api-server under ``/sre``. Airflow's auth does not
cover plugin apps, and need not: the source's signature or token is the authentication, and a
source without a configured secret is refused (fail closed).

Answers are JSON: ``{"status": ..., ...}``; refusals carry ``reason`` (a stable word) and
``detail`` (a sentence naming the header or field at fault).

======  ===================================================================================
status  when
======  ===================================================================================
201     a DAG run was started (``runs`` lists dag_id and run id per service)
200     nothing to start: a ping, a non-push event, a tag, a deleted branch, a redelivery
400     malformed headers or payload (not JSON, a field missing or of the wrong kind, an
        unsafe branch name, conf the DAG's params refuse)
401     the signature or token header is missing
403     the signature or token does not match, or no secret is configured for the source
404     the repository is not in the service catalog
413     the body is larger than the limit (``[sre_webhook] max_body_bytes``, 1 MiB default)
415     the body is not ``application/json``
503     the secret store, the catalog or the DAG to start is not available
======  ===================================================================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from operators.webhook.audit import AuditWriter, RecordsAuditWriter, write_audit
from operators.webhook.payloads import (
    PayloadError,
    PushEvent,
    Source,
    decode_json_object,
    detect_source,
    event_kind,
    lower_headers,
    parse_push,
)
from operators.webhook.repositories import RepositoryIndex
from operators.webhook.routing import TriggerPlan, plan_push
from operators.webhook.secrets import AirflowSecretSource, SecretSource
from operators.webhook.signatures import SignatureError, verify_gitee, verify_github, verify_gitlab
from operators.webhook.triggering import AirflowDagTrigger, DagTrigger, TriggerRefused

if TYPE_CHECKING:
    from include.catalog import Catalog

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
WEBHOOK_PATH = "/webhooks/git"
_UNSAFE_TEXT = re.compile(r"[^A-Za-z0-9._@+/-]")


@dataclass(frozen=True)
class Answer:
    """The HTTP status and JSON body of one answer."""

    status: int
    body: dict[str, Any]


class _Refusal(Exception):
    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


@dataclass
class _Call:
    """What is known about a call so far; becomes the audit record's detail."""

    client: str
    source: Source | None = None
    event: str = ""
    verified: bool = False
    push: PushEvent | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def detail(self, status: int, reason: str) -> dict[str, Any]:
        found: dict[str, Any] = {"status": status, "reason": reason, "client": self.client}
        found.update(source=self.source, event=_clean(self.event), verified=self.verified)
        if self.push is not None:
            found.update(
                delivery_id=self.push.delivery_id,
                repository=_clean(self.push.repository, 200),
                ref=_clean(self.push.ref, 255),
                after=self.push.after,
                pusher=_clean(self.push.pusher),
            )
        found.update(self.facts)
        return found

    @property
    def actor(self) -> str:
        pusher = _clean(self.push.pusher) if self.push is not None and self.verified else ""
        base = f"{self.source}-webhook" if self.source else "git-webhook"
        return f"{base}:{pusher}" if pusher else base


class GitWebhook:
    """What one webhook call does, from verified headers and body to started runs.

    :param secrets: gives each source's shared secret.
    :param trigger: starts DAG runs.
    :param audit: receives one audit record per call (per started run when several).
    :param catalog_loader: returns the service catalog.
    """

    def __init__(
        self,
        *,
        secrets: SecretSource,
        trigger: DagTrigger,
        audit: AuditWriter,
        catalog_loader: Callable[[], Catalog],
    ) -> None:
        self.secrets = secrets
        self.trigger = trigger
        self.audit = audit
        self.catalog_loader = catalog_loader

    def refuse(
        self, headers: Mapping[str, str], client: str, status: int, reason: str, detail: str
    ) -> Answer:
        """Refuse a call before its body is read (too large, wrong content type)."""
        call = _Call(client=client)
        try:
            call.source, call.event = detect_source(headers)
        except PayloadError:
            pass
        return self._refused(call, _Refusal(status, reason, detail))

    def handle(self, headers: Mapping[str, str], body: bytes, client: str) -> Answer:
        """Answer one call whose body was read in full; ``headers`` have lower-case names."""
        call = _Call(client=client)
        try:
            return self._handle(call, headers, body)
        except _Refusal as refusal:
            return self._refused(call, refusal)

    def _handle(self, call: _Call, headers: Mapping[str, str], body: bytes) -> Answer:
        try:
            call.source, call.event = detect_source(headers)
        except PayloadError as err:
            raise _Refusal(400, "unknown_source", str(err)) from None
        self._verify(call.source, headers, body)
        call.verified = True
        kind = event_kind(call.source, call.event)
        if kind == "ping":
            return self._ignored(call, 200, "ping", "pong: the webhook and its secret work")
        if kind == "other":
            return self._ignored(
                call, 200, "not_a_push", f"event {_clean(call.event)!r} is ignored"
            )
        try:
            call.push = parse_push(call.source, headers, decode_json_object(body))
        except PayloadError as err:
            raise _Refusal(400, "malformed", str(err)) from None
        push = call.push
        if push.deleted:
            return self._ignored(call, 200, "deleted", "a deleted ref starts nothing")
        if push.branch is None:
            return self._ignored(call, 200, "not_a_branch", "only branch pushes start pipelines")
        catalog = self._catalog()
        services = RepositoryIndex.from_catalog(catalog).match(push.repository_urls)
        if not services:
            raise _Refusal(
                404,
                "unknown_repository",
                f"repository {_clean(push.repository_urls[0], 200)!r} is not in the service catalog",
            )
        try:
            plans = [
                plan_push(push, name, catalog.service(name).release_branches) for name in services
            ]
        except PayloadError as err:
            raise _Refusal(400, "malformed", str(err)) from None
        return self._start(call, plans)

    def _verify(self, source: Source, headers: Mapping[str, str], body: bytes) -> None:
        try:
            secret = self.secrets.secret_for(source)
        except Exception:
            log.exception("webhook secret lookup failed source=%s", source)
            raise _Refusal(
                503, "secret_unavailable", "the webhook secret cannot be read now"
            ) from None
        if not secret:
            raise _Refusal(
                403,
                "not_configured",
                f"no webhook secret is configured for {source}; every {source} call is refused",
            )
        try:
            if source == "github":
                verify_github(secret, body, headers.get("x-hub-signature-256"))
            elif source == "gitlab":
                verify_gitlab(secret, headers.get("x-gitlab-token"))
            else:
                verify_gitee(secret, headers.get("x-gitee-token"), headers.get("x-gitee-timestamp"))
        except SignatureError as err:
            status = 401 if err.missing else 403
            raise _Refusal(status, "bad_signature", str(err)) from None

    def _catalog(self) -> Catalog:
        try:
            return self.catalog_loader()
        except Exception as err:
            log.exception("webhook cannot load the service catalog")
            raise _Refusal(
                503, "catalog_unavailable", f"the service catalog cannot be read: {err}"
            ) from None

    def _start(self, call: _Call, plans: list[TriggerPlan]) -> Answer:
        assert call.push is not None and call.source is not None
        runs: list[dict[str, Any]] = []
        for plan in plans:
            try:
                result = self.trigger.trigger(
                    plan, user=f"{call.source}-webhook", note=self._note(call.push)
                )
            except TriggerRefused as err:
                call.facts["runs"] = runs
                raise _Refusal(err.status, "not_started", f"{plan.dag_id}: {err.message}") from None
            except Exception:
                log.exception(
                    "webhook trigger failed dag_id=%s run_id=%s", plan.dag_id, plan.run_id
                )
                call.facts["runs"] = runs
                raise _Refusal(
                    503, "not_started", f"{plan.dag_id}: the run cannot be started now"
                ) from None
            outcome = "triggered" if result.created else "duplicate"
            run = {"service": plan.service, "dag_id": plan.dag_id, "dag_run_id": plan.run_id}
            runs.append({**run, "status": outcome, "git_ref": plan.conf["git_ref"]})
            log.info(
                "webhook %s source=%s service=%s dag_id=%s run_id=%s commit=%s",
                outcome,
                call.source,
                plan.service,
                plan.dag_id,
                plan.run_id,
                plan.conf["git_ref"],
            )
            write_audit(
                self.audit,
                actor=call.actor,
                action=f"webhook.{outcome}",
                target=plan.service,
                dag_id=plan.dag_id,
                run_id=plan.run_id,
                detail=call.detail(201 if result.created else 200, outcome),
            )
        created = any(run["status"] == "triggered" for run in runs)
        status = "triggered" if created else "duplicate"
        return Answer(201 if created else 200, {"status": status, "runs": runs})

    def _ignored(self, call: _Call, status: int, reason: str, detail: str) -> Answer:
        log.info("webhook ignored source=%s reason=%s", call.source, reason)
        target = call.push.repository if call.push is not None else "git-webhook"
        write_audit(
            self.audit,
            actor=call.actor,
            action="webhook.ignored",
            target=_clean(target, 200),
            detail=call.detail(status, reason),
        )
        return Answer(status, {"status": "ignored", "reason": reason, "detail": detail})

    def _refused(self, call: _Call, refusal: _Refusal) -> Answer:
        log.warning(
            "webhook refused source=%s status=%s reason=%s client=%s",
            call.source,
            refusal.status,
            refusal.reason,
            call.client,
        )
        target = call.push.repository if call.push is not None else "git-webhook"
        write_audit(
            self.audit,
            actor=call.actor,
            action="webhook.refused",
            target=_clean(target, 200),
            detail={**call.detail(refusal.status, refusal.reason), "message": refusal.detail[:500]},
        )
        body = {"status": "refused", "reason": refusal.reason, "detail": refusal.detail}
        if "runs" in call.facts:
            body["runs"] = call.facts["runs"]
        return Answer(refusal.status, body)

    @staticmethod
    def _note(push: PushEvent) -> str:
        pusher = _UNSAFE_TEXT.sub("?", push.pusher)[:60] or "unknown"
        branch = _UNSAFE_TEXT.sub("?", push.branch or "")[:100]
        return f"{push.source} push to {branch} by {pusher}, commit {push.after[:12]}"


def default_webhook() -> GitWebhook:
    """The webhook wired to Airflow: connection/variable secrets, real triggers, records audit."""
    from include.catalog import load_catalog

    return GitWebhook(
        secrets=AirflowSecretSource(),
        trigger=AirflowDagTrigger(),
        audit=RecordsAuditWriter(),
        catalog_loader=load_catalog,
    )


def max_body_bytes() -> int:
    """The body size limit: ``[sre_webhook] max_body_bytes``, 1 MiB by default."""
    from airflow.configuration import conf

    return conf.getint("sre_webhook", "max_body_bytes", fallback=DEFAULT_MAX_BODY_BYTES)


def create_app(
    webhook: GitWebhook | Callable[[], GitWebhook] = default_webhook,
    *,
    body_limit: int | Callable[[], int] = max_body_bytes,
) -> FastAPI:
    """Build the FastAPI app serving :data:`WEBHOOK_PATH`.

    :param webhook: the webhook, or a factory called once on the first request.
    :param body_limit: the body size limit in bytes, or a function giving it per request.
    """
    app = FastAPI(
        title="SRE Git webhook",
        description="Push events from GitHub, GitLab and Gitee start CI or the delivery pipeline.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    built: list[GitWebhook] = [webhook] if isinstance(webhook, GitWebhook) else []

    def current() -> GitWebhook:
        if not built:
            assert callable(webhook)
            built.append(webhook())
        return built[0]

    @app.post(WEBHOOK_PATH)
    async def receive_git_webhook(request: Request) -> JSONResponse:
        headers = lower_headers(request.headers)
        client = request.client.host if request.client else ""
        limit = body_limit() if callable(body_limit) else body_limit
        hook = await run_in_threadpool(current)
        problem = _shape_problem(headers, limit)
        if problem is not None:
            answer = await run_in_threadpool(hook.refuse, headers, client, *problem)
        else:
            body = await _read_capped(request, limit)
            if body is None:
                too_big = (413, "too_large", f"the body is larger than {limit} bytes")
                answer = await run_in_threadpool(hook.refuse, headers, client, *too_big)
            else:
                answer = await run_in_threadpool(hook.handle, headers, body, client)
        return JSONResponse(answer.body, status_code=answer.status)

    return app


def _shape_problem(headers: Mapping[str, str], limit: int) -> tuple[int, str, str] | None:
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return 415, "unsupported_media_type", "send the payload as application/json"
    length = headers.get("content-length")
    if length is not None:
        if not (length.isascii() and length.isdigit()):
            return 400, "malformed", "Content-Length: not a number"
        if int(length) > limit:
            return 413, "too_large", f"the body is larger than {limit} bytes"
    return None


async def _read_capped(request: Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _clean(text: str, limit: int = 100) -> str:
    printable = "".join(ch if ch.isprintable() else "?" for ch in text)
    return printable if len(printable) <= limit else printable[: limit - 3] + "..."
