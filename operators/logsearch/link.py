"""An operator extra link to a task try's log in Kibana (the ``[elasticsearch] frontend``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey


class TaskLogLink(BaseOperatorLink):
    """Button "Task log (Kibana)": Discover filtered on the task try's log_id.

    The log_id comes from the pinned ``[elasticsearch] log_id_template`` and the address from
    ``[elasticsearch] frontend``, the same settings the Elasticsearch task handler uses. Without a
    frontend configured the link is empty, which the UI shows as disabled.
    """

    name = "Task log (Kibana)"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        from operators.logsearch.settings import LogSettings

        settings = LogSettings.from_airflow_config()
        log_id = settings.log_id(
            dag_id=ti_key.dag_id,
            task_id=ti_key.task_id,
            run_id=ti_key.run_id,
            map_index=ti_key.map_index,
            try_number=ti_key.try_number,
        )
        return settings.frontend_url(log_id) or ""
