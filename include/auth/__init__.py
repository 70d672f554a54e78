"""Who may do what in the compose stack (FAB auth manager): roles and DAG-level access.

Two roles on top of Airflow's built-in ones:

- ``developer`` reads everything a Viewer reads, and may trigger (and clear, pause) the CI DAGs
  ``ci_build``, ``ci_test``, ``quality_scan`` and ``nightly_ci``; nothing of the releases.
- ``release_manager`` may do all of that, trigger ``delivery_pipeline`` and
  ``dual_site_release``, and answer their approvals (Required Actions).

:mod:`include.auth.roles` holds the definitions, :func:`~include.auth.roles.access_control` the
``access_control`` dict each DAG declares, and ``python -m include.auth sync-roles`` creates or
updates the roles in the FAB database (idempotent; run it after ``airflow db migrate`` and before
the dag-processor starts). ``include/auth/webserver_config.py`` is the FAB config file
(``[fab] config_file``) of the compose stack's api-server.
"""

from __future__ import annotations

from include.auth.roles import (
    CI_DAG_IDS,
    DEVELOPER,
    RELEASE_DAG_IDS,
    RELEASE_MANAGER,
    access_control,
    desired_permissions,
    sync_roles,
)

__all__ = [
    "CI_DAG_IDS",
    "DEVELOPER",
    "RELEASE_DAG_IDS",
    "RELEASE_MANAGER",
    "access_control",
    "desired_permissions",
    "sync_roles",
]
