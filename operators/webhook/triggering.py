"""Start the DAG run a push asks for, through Airflow's own trigger call in the api-server.

:func:`airflow.api.common.trigger_dag.trigger_dag` validates the conf against the DAG's params
(the same check the REST API makes) and creates a queued run. A run id that already exists, found
up front or by the unique key of the ``dag_run`` table when two workers race, means the event was
delivered before: nothing new is started.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from operators.webhook.routing import TriggerPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriggerResult:
    """What happened to a :class:`TriggerPlan`: a new run, or the run of an earlier delivery."""

    dag_id: str
    run_id: str
    created: bool


class TriggerRefused(Exception):
    """Airflow refused to start the run.

    :param status: the HTTP status to answer with (400 for bad conf, 503 for a missing DAG).
    :param message: why, safe to return to the caller.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DagTrigger(Protocol):
    """Starts DAG runs; the webhook depends on nothing else of Airflow's to do it."""

    def trigger(self, plan: TriggerPlan, *, user: str, note: str) -> TriggerResult: ...


class AirflowDagTrigger:
    """Starts runs in the metadata database the api-server uses."""

    def trigger(self, plan: TriggerPlan, *, user: str, note: str) -> TriggerResult:
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.exceptions import DagNotFound, DagRunAlreadyExists
        from airflow.models.dagrun import DagRun
        from airflow.utils.types import DagRunTriggeredByType
        from sqlalchemy.exc import IntegrityError

        try:
            trigger_dag(
                plan.dag_id,
                run_id=plan.run_id,
                conf=dict(plan.conf),
                triggered_by=DagRunTriggeredByType.REST_API,
                triggering_user_name=user,
                note=note,
            )
        except DagRunAlreadyExists:
            return TriggerResult(plan.dag_id, plan.run_id, created=False)
        except IntegrityError:
            if DagRun.find_duplicate(dag_id=plan.dag_id, run_id=plan.run_id) is None:
                raise
            log.info("webhook run raced and lost dag_id=%s run_id=%s", plan.dag_id, plan.run_id)
            return TriggerResult(plan.dag_id, plan.run_id, created=False)
        except DagNotFound:
            raise TriggerRefused(
                503, f"DAG {plan.dag_id} is not available in this Airflow; nothing was started"
            ) from None
        except ValueError as err:
            raise TriggerRefused(400, str(err)[:500]) from None
        return TriggerResult(plan.dag_id, plan.run_id, created=True)
