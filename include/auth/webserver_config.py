"""FAB settings of the compose stack's api-server: ``[fab] config_file`` points here.

Users sign in with a user name and password kept in the metadata DB (create them with
``airflow users create --role developer ...``); nobody is let in anonymously and nobody signs
themselves up. Roles and their DAG-level access come from ``python -m include.auth sync-roles``.
"""

from __future__ import annotations

from flask_appbuilder.const import AUTH_DB

AUTH_TYPE = AUTH_DB
AUTH_ROLE_PUBLIC = None
AUTH_USER_REGISTRATION = False
AUTH_ROLES_SYNC_AT_LOGIN = False
WTF_CSRF_ENABLED = True
WTF_CSRF_TIME_LIMIT = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
