"""Airflow plugin: the Git webhook endpoint on the api-server, ``POST /sre/webhooks/git``.

The endpoint is not behind Airflow's login: each call proves itself with its source's signature
or token (see :mod:`operators.webhook.app`). Configure one secret per source as the password of
the connection ``git_webhook_github``, ``git_webhook_gitlab`` or ``git_webhook_gitee``; a source
without a secret is refused.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from operators.webhook.app import create_app

URL_PREFIX = "/sre"


class GitWebhookPlugin(AirflowPlugin):
    """Mounts the Git webhook app under :data:`URL_PREFIX`."""

    name = "sre_git_webhook"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "SRE Git webhook"}]
