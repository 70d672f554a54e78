"""Human approvals of a release: before the second site, and for an override of a freeze window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from operators.records.models import Decision

SECOND_SITE = "second_site"
FREEZE_OVERRIDE = "freeze_override"


class ReleaseApprovalOperator(ApprovalOperator):
    """Ask a person to approve a release step; skip itself when no approval is needed.

    ``second_site`` asks when the catalog's ``approval_before_second_site`` is set;
    ``freeze_override`` asks when the preflight found an active freeze window and the run gave an
    override reason. A rejection fails the task without retries (which backs the release out); the
    decision, the person and their comment are recorded.

    :param service: catalog name of the service. (templated)
    :param image: the image being released. (templated)
    :param purpose: ``second_site`` or ``freeze_override``.
    :param preflight_task_id: the preflight task (release id, freeze details).
    :param skip_when_not_needed: skip when no approval is needed (else succeed with ``{"needed": False}``,
        which tasks right after a setup task need).
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "service", "image")

    def __init__(
        self,
        *,
        service: str,
        image: str,
        purpose: str,
        preflight_task_id: str,
        skip_when_not_needed: bool = True,
        **kwargs: Any,
    ) -> None:
        if purpose not in (SECOND_SITE, FREEZE_OVERRIDE):
            raise ValueError(
                f"purpose must be {SECOND_SITE!r} or {FREEZE_OVERRIDE!r}, not {purpose!r}"
            )
        kwargs.setdefault("response_timeout", timedelta(hours=24))
        super().__init__(fail_on_reject=False, **kwargs)
        self.service = service
        self.image = image
        self.purpose = purpose
        self.preflight_task_id = preflight_task_id
        self.skip_when_not_needed = skip_when_not_needed
        self.records: Any = None

    def _preflight(self, context: Context) -> dict[str, Any]:
        value = context["ti"].xcom_pull(task_ids=self.preflight_task_id)
        return dict(value) if isinstance(value, Mapping) else {}

    def needed(self, context: Context) -> bool:
        if self.purpose == FREEZE_OVERRIDE:
            return bool(self._preflight(context).get("override_needed"))
        from include.catalog import load_catalog

        return load_catalog().service(self.service).release.approval_before_second_site

    def execute(self, context: Context) -> Any:
        from airflow.sdk.exceptions import AirflowSkipException

        if not self.needed(context):
            message = f"no {self.purpose.replace('_', ' ')} approval needed for {self.service}"
            if self.skip_when_not_needed:
                raise AirflowSkipException(message)
            self.log.info(message)
            return {"needed": False}
        preflight = self._preflight(context)
        if self.purpose == FREEZE_OVERRIDE:
            self.body = (
                f"{preflight.get('freeze')}.\n\nRelease of **{self.service}** `{self.image}` asks to override it: "
                f"{preflight.get('override_reason')!s}"
            )
        self.log.info("approval requested service=%s purpose=%s", self.service, self.purpose)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        chosen = list(event.get("chosen_options") or [])
        user = event.get("responded_by_user") or {}
        approver = (
            str(user.get("name") or user.get("id") or "unknown")
            if isinstance(user, Mapping)
            else str(user)
        )
        decision: Decision = "approved" if chosen == [self.APPROVE] else "rejected"
        comment = (event.get("params_input") or {}).get("comment")
        if self.purpose == FREEZE_OVERRIDE:
            comment = str(self._preflight(context).get("override_reason") or "") + (
                f" / {comment}" if comment else ""
            )
        self.record_decision(context, decision, approver, comment)
        self.log.info(
            "approval answered service=%s purpose=%s decision=%s by=%s",
            self.service,
            self.purpose,
            decision,
            approver,
        )
        if decision == "rejected":
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(
                f"{self.purpose.replace('_', ' ')} approval of {self.service} rejected by {approver}"
                + (f": {comment}" if comment else "")
            )
        return super().execute_complete(context, event)

    def record_decision(
        self, context: Context, decision: Decision, approver: str, comment: str | None
    ) -> None:
        from operators.records.models import TaskRef
        from operators.release.records import release_records

        records = self.records or release_records()
        release_id = self._preflight(context).get("release_id")
        records.record_approval(
            TaskRef.from_context(context),
            decision=decision,
            approver=approver,
            release_id=int(release_id) if release_id is not None else None,
            comment=comment or None,
        )
        if release_id is not None:
            records.record_release_step(
                int(release_id),
                site="all",
                step=f"approval:{self.purpose}",
                state="success" if decision == "approved" else "failed",
                detail={"decision": decision, "approver": approver, "comment": comment},
            )
