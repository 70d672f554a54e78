"""Which DAG a push starts, with which conf and under which run id.

A push to one of the service's ``release_branches`` (glob patterns such as ``release/*``)
starts ``delivery_pipeline``; a push to any other branch starts ``ci_build`` only. Either way
the conf is the service and the pushed commit, nothing taken verbatim from the payload but
those two checked values.

The run id is ``webhook__<source>__<service>__<delivery id>``: a redelivery of the same event
asks for the same run id, and the metadata database's unique key on (dag_id, run_id) refuses the
second run atomically, whichever api-server worker receives it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from include.params import check_git_ref
from operators.webhook.payloads import PayloadError, PushEvent

RELEASE_DAG_ID = "delivery_pipeline"
CI_DAG_ID = "ci_build"
RUN_ID_PREFIX = "webhook"


@dataclass(frozen=True)
class TriggerPlan:
    """One DAG run to start for a push."""

    service: str
    dag_id: str
    run_id: str
    conf: dict[str, str] = field(default_factory=dict)

    @property
    def release(self) -> bool:
        return self.dag_id == RELEASE_DAG_ID


def is_release_branch(branch: str, patterns: Iterable[str]) -> bool:
    """Whether ``branch`` matches one of the service's release branch globs."""
    return any(fnmatchcase(branch, pattern) for pattern in patterns)


def webhook_run_id(event: PushEvent, service: str) -> str:
    """The run id a push asks for; the same for every redelivery of the event."""
    return f"{RUN_ID_PREFIX}__{event.source}__{service}__{event.delivery_id}"


def plan_push(event: PushEvent, service: str, release_branches: Iterable[str]) -> TriggerPlan:
    """The run to start for ``event`` on ``service``.

    :param event: a branch push that deleted nothing.
    :param service: the catalog service the repository belongs to.
    :param release_branches: the service's release branch patterns.
    """
    branch = event.branch
    if branch is None:
        raise PayloadError("ref", f"{event.ref!r} is not a branch (refs/heads/...)")
    try:
        check_git_ref(branch, field="ref")
        git_ref = check_git_ref(event.after, field="after")
    except ValueError as err:
        raise PayloadError(getattr(err, "field", "ref"), str(err)) from None
    dag_id = RELEASE_DAG_ID if is_release_branch(branch, release_branches) else CI_DAG_ID
    return TriggerPlan(
        service=service,
        dag_id=dag_id,
        run_id=webhook_run_id(event, service),
        conf={"service": service, "git_ref": git_ref},
    )
