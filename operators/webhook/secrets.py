"""Where each webhook source's secret comes from.

For source ``<source>`` (``github``, ``gitlab`` or ``gitee``) the secret is the password of the
Airflow connection ``git_webhook_<source>``; without one, the Airflow variable
``git_webhook_<source>_secret``. Any secrets backend Airflow is configured with works, e.g.
``AIRFLOW_CONN_GIT_WEBHOOK_GITHUB='{"conn_type": "generic", "password": "..."}'``.

A source without a secret is refused: the webhook fails closed.
"""

from __future__ import annotations

from typing import Protocol

from operators.webhook.payloads import Source

CONN_ID_TEMPLATE = "git_webhook_{source}"
VARIABLE_TEMPLATE = "git_webhook_{source}_secret"


class SecretSource(Protocol):
    """Gives the shared secret of a webhook source, or None when none is configured."""

    def secret_for(self, source: Source) -> str | None: ...


class AirflowSecretSource:
    """Secrets from Airflow connections, then variables, read at every call (rotation is live)."""

    def secret_for(self, source: Source) -> str | None:
        from airflow.exceptions import AirflowNotFoundException
        from airflow.models.connection import Connection
        from airflow.models.variable import Variable

        try:
            connection = Connection.get_connection_from_secrets(
                CONN_ID_TEMPLATE.format(source=source)
            )
        except AirflowNotFoundException:
            connection = None
        if connection is not None and connection.password:
            return str(connection.password)
        value = Variable.get(VARIABLE_TEMPLATE.format(source=source), default_var=None)
        return str(value) if value else None
