"""Audit listener: DAG-run and task-instance lifecycle into the platform records.

Every DAG run that starts, succeeds or fails, and every task try that starts running,
succeeds or fails, becomes an audit event (``dag_run.running``, ``task_instance.failed``...)
with who triggered the run and from where, and each DAG run keeps one ``pipeline_runs`` row.

Where the hooks run and what they receive (Airflow 3.3):

- ``on_dag_run_*`` run in the scheduler, or in the api-server when someone sets a run's
  state; they get the ORM ``DagRun`` with ``run_type``, ``triggered_by`` (ui, rest_api,
  cli, operator, test, timetable, asset, backfill) and ``triggering_user_name``.
- ``on_task_instance_*`` run in the task process (a ``RuntimeTaskInstance`` whose context
  holds the DAG run with ``run_type`` and ``triggering_user_name``, but not
  ``triggered_by``), or in the api-server when someone marks a task (an ORM
  ``TaskInstance``, ``previous_state`` None). The hooks do not say who marked it; such events
  have the actor ``unknown`` (Airflow's own audit log has the user).

Where a run came from: ``triggered_by`` when known (ui, rest_api -> api, cli and test -> cli,
operator -> dag, timetable/asset/backfill -> schedule), else the run type. A REST-API run whose
run id starts with ``webhook__`` or whose conf has ``"trigger_source": "webhook"`` came from the
Git webhook. Task events take the source the DAG-run event recorded for their run.

The listener never touches Airflow's metadata database and never blocks: events are written by
a background thread (:class:`~operators.records.background.BackgroundRecorder`) with bounded
retries. When the records database is down an event is dropped with one ERROR line; when the
records connection is not defined, recording is off with one WARNING. Pending events are
flushed (up to a few seconds) before the process stops.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from operators.records.background import BackgroundRecorder
from operators.records.models import AUDIT_SOURCES, AuditSource
from operators.records.store import RecordsStore, RetryPolicy

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0
WEBHOOK_RUN_PREFIX = "webhook__"

_BY_TRIGGER: dict[str, AuditSource] = {
    "ui": "ui",
    "rest_api": "api",
    "cli": "cli",
    "test": "cli",
    "operator": "dag",
    "timetable": "schedule",
    "asset": "schedule",
    "backfill": "schedule",
}
_BY_RUN_TYPE: dict[str, AuditSource] = {
    "scheduled": "schedule",
    "backfill": "schedule",
    "asset_triggered": "schedule",
    "asset_materialization": "schedule",
    "operator_triggered": "dag",
    "manual": "api",
}


def _value(obj: Any) -> str | None:
    """The string value of an enum member or string, None for None."""
    if obj is None:
        return None
    return str(getattr(obj, "value", obj))


def trigger_source(
    run_type: str | None,
    triggered_by: str | None,
    conf: Mapping[str, Any] | None,
    run_id: str,
) -> AuditSource:
    """Where a DAG run came from, as an audit source.

    :param run_type: the run's ``run_type`` (``manual``, ``scheduled``...).
    :param triggered_by: the run's ``triggered_by`` value, None when not known.
    :param conf: the run's conf.
    :param run_id: the run id.
    """
    by_api = triggered_by in (None, "rest_api") and run_type in (None, "manual")
    if by_api and (
        run_id.startswith(WEBHOOK_RUN_PREFIX) or (conf or {}).get("trigger_source") == "webhook"
    ):
        return "webhook"
    if triggered_by in _BY_TRIGGER:
        return _BY_TRIGGER[triggered_by]
    return _BY_RUN_TYPE.get(run_type or "", "api")


def _as_source(value: str | None, default: AuditSource) -> AuditSource:
    return cast("AuditSource", value) if value in AUDIT_SOURCES else default


def _actor(user: str | None, source: AuditSource) -> str:
    if user:
        return user
    return "scheduler" if source == "schedule" else "airflow"


def _text(value: Any, limit: int = 1000) -> str | None:
    return None if value is None else str(value)[:limit]


@dataclass(frozen=True)
class RunFacts:
    """What the listener keeps of a DAG run (plain values, safe to pass to another thread)."""

    dag_id: str
    run_id: str
    run_type: str | None
    triggered_by: str | None
    user: str | None
    conf: Mapping[str, Any] = field(default_factory=dict)
    start_date: datetime | None = None
    end_date: datetime | None = None
    clear_number: int = 0

    @classmethod
    def of(cls, dag_run: Any) -> RunFacts:
        conf = getattr(dag_run, "conf", None)
        return cls(
            dag_id=str(dag_run.dag_id),
            run_id=str(dag_run.run_id),
            run_type=_value(getattr(dag_run, "run_type", None)),
            triggered_by=_value(getattr(dag_run, "triggered_by", None)),
            user=getattr(dag_run, "triggering_user_name", None),
            conf=dict(conf) if isinstance(conf, Mapping) else {},
            start_date=getattr(dag_run, "start_date", None),
            end_date=getattr(dag_run, "end_date", None),
            clear_number=int(getattr(dag_run, "clear_number", 0) or 0),
        )

    @property
    def source(self) -> AuditSource:
        return trigger_source(self.run_type, self.triggered_by, self.conf, self.run_id)

    @property
    def service(self) -> str | None:
        value = self.conf.get("service")
        return str(value)[:100] if value else None

    @property
    def commit(self) -> str | None:
        value = self.conf.get("git_ref") or self.conf.get("commit")
        return str(value)[:100] if value else None


def _dag_run_of(task_instance: Any) -> Any:
    """The DAG run of an ORM task instance (api-server) or a runtime one (task process)."""
    dag_run = getattr(task_instance, "dag_run", None)
    if dag_run is not None:
        return dag_run
    get_context = getattr(task_instance, "get_template_context", None)
    if get_context is None:
        return None
    return get_context().get("dag_run")


def _open_store() -> RecordsStore:
    return RecordsStore.from_conn_id(retry=RetryPolicy(attempts=1))


class AuditListener:
    """Listener hooks that turn lifecycle changes into audit events.

    :param recorder: where the writes go; one per process.
    """

    def __init__(self, recorder: BackgroundRecorder) -> None:
        self.recorder = recorder

    # -- DAG runs (scheduler, api-server) -------------------------------------------------

    @hookimpl
    def on_dag_run_running(self, dag_run: Any, msg: str) -> None:
        self._dag_run(dag_run, "running", msg)

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        self._dag_run(dag_run, "success", msg)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        self._dag_run(dag_run, "failed", msg)

    def _dag_run(self, dag_run: Any, state: str, msg: str) -> None:
        try:
            facts = RunFacts.of(dag_run)
        except Exception:
            log.warning("audit listener could not read a DAG run state=%s", state, exc_info=True)
            return
        manual = "manually" in (msg or "")
        action = f"dag_run.{'marked_' if manual else ''}{state}"
        source = facts.source
        actor = "unknown" if manual else _actor(facts.user, source)
        now = datetime.now(UTC)
        occurred = (facts.start_date if state == "running" else facts.end_date) or now
        key = f"dag_run:{facts.dag_id}:{facts.run_id}:{facts.clear_number}:{action}"

        def write(store: RecordsStore) -> None:
            store.record_pipeline_run(
                dag_id=facts.dag_id,
                run_id=facts.run_id,
                state=state,
                service=facts.service,
                commit=facts.commit,
                run_type=facts.run_type,
                source=source,
                triggered_by=_actor(facts.user, source),
                started_at=facts.start_date,
                finished_at=facts.end_date if state != "running" else None,
            )
            store.audit(
                actor=actor,
                action=action,
                target=facts.dag_id,
                source=source,
                dag_id=facts.dag_id,
                run_id=facts.run_id,
                detail={
                    "run_type": facts.run_type,
                    "triggered_by": facts.triggered_by,
                    "service": facts.service,
                    "msg": _text(msg),
                },
                occurred_at=occurred,
                event_key=key,
            )

        self.recorder.submit(f"{action} dag_id={facts.dag_id} run_id={facts.run_id}", write)

    # -- task instances (task process, api-server) --------------------------------------

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        self._task(task_instance, "running", previous_state, None)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self._task(task_instance, "success", previous_state, None)

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self._task(task_instance, "failed", previous_state, error)

    def _task(self, ti: Any, event: str, previous_state: Any, error: Any) -> None:
        try:
            dag_run = _dag_run_of(ti)
            facts = RunFacts.of(dag_run) if dag_run is not None else None
            dag_id, run_id, task_id = str(ti.dag_id), str(ti.run_id), str(ti.task_id)
            raw_index = getattr(ti, "map_index", None)
            map_index = -1 if raw_index is None else int(raw_index)
            try_number = int(getattr(ti, "try_number", 0) or 0)
            state = _value(getattr(ti, "state", None))
            hostname = getattr(ti, "hostname", None)
        except Exception:
            log.warning(
                "audit listener could not read a task instance event=%s", event, exc_info=True
            )
            return
        manual = previous_state is None and event != "running"
        action = f"task_instance.{'marked_' if manual else ''}{event}"
        fallback: AuditSource = facts.source if facts else "api"
        actor = "unknown" if manual else _actor(facts.user if facts else None, fallback)
        key = f"ti:{dag_id}:{run_id}:{task_id}:{map_index}:{try_number}:{action}"
        detail = {
            "try_number": try_number,
            "map_index": map_index,
            "previous_state": _value(previous_state),
            "state": state,
            "hostname": hostname,
            "error": _text(error),
        }
        occurred = datetime.now(UTC)

        def write(store: RecordsStore) -> None:
            run = store.pipeline_run(dag_id, run_id)
            source = _as_source(run.source if run else None, fallback)
            store.audit(
                actor=actor,
                action=action,
                target=f"{dag_id}.{task_id}",
                source=source,
                dag_id=dag_id,
                run_id=run_id,
                task_id=task_id,
                detail={k: v for k, v in detail.items() if v is not None},
                occurred_at=occurred,
                event_key=key,
            )

        self.recorder.submit(
            f"{action} dag_id={dag_id} run_id={run_id} task_id={task_id} try={try_number}", write
        )

    # -- process lifecycle -----------------------------------------------------------------

    @hookimpl
    def before_stopping(self, component: Any) -> None:
        self.recorder.flush(FLUSH_SECONDS)


RECORDER = BackgroundRecorder(_open_store)
AUDIT_LISTENER = AuditListener(RECORDER)


class AuditListenerPlugin(AirflowPlugin):
    """Registers :data:`AUDIT_LISTENER`."""

    name = "sre_audit_listener"
    listeners = [AUDIT_LISTENER]
