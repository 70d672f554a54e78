"""Registers the "Task log (Kibana)" extra link on every task."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from operators.logsearch.link import TaskLogLink


class LogLinksPlugin(AirflowPlugin):
    """Adds :class:`~operators.logsearch.link.TaskLogLink` to every operator's extra links.

    It is also listed in ``operator_extra_links`` so operators that declare it themselves
    (``operator_extra_links = (TaskLogLink(),)``) are serialized and shown with it.
    """

    name = "sre_log_links"
    global_operator_extra_links = [TaskLogLink()]
    operator_extra_links = [TaskLogLink()]
