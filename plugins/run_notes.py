"""A failed DAG run says why at the top: its note names the failed task and the error.

When a run fails, the scheduler calls this listener. It finds the run's failed tasks, takes the
one-line error the task recorded in the platform records (the audit listener writes every task
failure with its error), and sets the run's note, which the UI shows at the top of the run:

    Failed at test.run_tests: 6 of 42 tests failed: test_greets_in_chinese, ...

A note someone already wrote is never replaced. When the records are out of reach the note
still names the failed task and points at its log; the listener never fails the scheduler.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

MAX_NOTE = 1000


def failure_note(failed_tasks: list[str], errors: dict[str, str]) -> str:
    """The note for a run whose ``failed_tasks`` failed, with the ``errors`` known per task."""
    if not failed_tasks:
        return (
            "Failed: no task failed (the run was marked failed or timed out); see the run's events."
        )
    first = failed_tasks[0]
    reason = errors.get(first) or "see the task's log"
    note = f"Failed at {first}: {reason}"
    others = failed_tasks[1:]
    if others:
        note += f" (also failed: {', '.join(others[:5])}{', ...' if len(others) > 5 else ''})"
    return note if len(note) <= MAX_NOTE else note[: MAX_NOTE - 3] + "..."


def _recorded_errors(run_id: str) -> dict[str, str]:
    from operators.records import RecordsStore
    from operators.records.background import flush_all

    # A task failure recorded by this very process (dag.test, a standalone run) may still sit in
    # the audit listener's queue; give it a moment to land. Other processes' writes are done.
    flush_all(2)

    errors: dict[str, str] = {}
    with RecordsStore.from_conn_id() as store:
        for event in reversed(store.recent_audit_events(limit=200, run_id=run_id)):
            if event.action != "task_instance.failed" or not event.task_id:
                continue
            detail = event.detail if isinstance(event.detail, dict) else {}
            error = str(detail.get("error") or "").strip()
            if error:
                errors[event.task_id] = error.splitlines()[0][:500]
    return errors


class FailureNoteListener:
    """Writes the note of a failed DAG run."""

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        try:
            self._write_note(str(dag_run.dag_id), str(dag_run.run_id))
        except Exception:
            log.warning("could not write the failure note of a DAG run", exc_info=True)

    @staticmethod
    def _write_note(dag_id: str, run_id: str) -> None:
        # The run handed to listeners may be detached from its session: work on a fresh one.
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        with create_session() as session:
            run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one_or_none()
            if run is None or run.note:
                return
            failed = (
                session.query(TaskInstance.task_id)
                .filter_by(dag_id=dag_id, run_id=run_id, state=TaskInstanceState.FAILED)
                .order_by(TaskInstance.end_date, TaskInstance.task_id)
                .all()
            )
            tasks = list(dict.fromkeys(row[0] for row in failed))
            try:
                errors = _recorded_errors(run_id) if tasks else {}
            except Exception as err:
                log.warning(
                    "run note without errors: records unavailable run_id=%s: %s", run_id, err
                )
                errors = {}
            run.note = failure_note(tasks, errors)
        log.info("run note set dag_id=%s run_id=%s", dag_id, run_id)


class RunNotesPlugin(AirflowPlugin):
    """Registers :class:`FailureNoteListener`."""

    name = "sre_run_notes"
    listeners = [FailureNoteListener()]
