"""Role definitions for the FAB auth manager, and the code that puts them in its database.

Airflow checks a trigger (``POST /api/v2/dags/{dag}/dagRuns``) against ``can_create`` on
``DAG Run:<dag>`` (or on all ``DAG Runs``) *and* ``can_edit`` on ``DAG:<dag>`` (or on all
``DAGs``); an approval (``PATCH .../hitlDetails``) against ``can_edit`` on ``HITL Detail`` and
``can_edit`` on ``DAG:<dag>``. So neither role gets ``can_edit`` on all DAGs: each gets it on the
DAGs it may run, and only ``release_manager`` gets ``can_edit`` on ``HITL Detail``.

The same per-DAG permissions come from two places that agree: :func:`access_control` is what a
DAG declares (``DAG(access_control=access_control("ci_build"))``), which the dag-processor syncs
(and which revokes any other role's DAG-level grants on that DAG), and :func:`sync_roles` grants
them when it creates the roles, so the roles work before the first DAG sync and for DAGs that
declare nothing. A DAG that declares ``access_control`` needs the roles to exist first: the
dag-processor refuses a mapping that names an unknown role.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DEVELOPER = "developer"
RELEASE_MANAGER = "release_manager"

CI_DAG_IDS = ("ci_build", "ci_test", "quality_scan", "nightly_ci")
RELEASE_DAG_IDS = ("delivery_pipeline", "dual_site_release")

# What running a DAG takes, as DAG-level resources: see the module docstring.
RUN_DAG: Mapping[str, frozenset[str]] = {
    "DAGs": frozenset({"can_read", "can_edit"}),
    "DAG Runs": frozenset({"can_read", "can_create"}),
}
_DAG_RESOURCE_PREFIX = {"DAGs": "DAG:", "DAG Runs": "DAG Run:"}

# Roles per DAG: who may run it.
DAG_ROLES: Mapping[str, tuple[str, ...]] = {
    **{dag_id: (DEVELOPER, RELEASE_MANAGER) for dag_id in CI_DAG_IDS},
    **{dag_id: (RELEASE_MANAGER,) for dag_id in RELEASE_DAG_IDS},
}

# Global permissions beyond the Viewer's, per role.
EXTRA_PERMISSIONS: Mapping[str, tuple[tuple[str, str], ...]] = {
    DEVELOPER: (),
    RELEASE_MANAGER: (
        ("can_edit", "HITL Detail"),
        ("menu_access", "HITL Detail"),
    ),
}


def access_control(dag_id: str) -> dict[str, dict[str, set[str]]]:
    """The ``access_control`` a DAG declares: which of our roles may run it.

    :param dag_id: a DAG of :data:`DAG_ROLES`.
    :raises KeyError: for a DAG no role may run (declare nothing for those).
    """
    roles = DAG_ROLES[dag_id]
    return {
        role: {resource: set(actions) for resource, actions in RUN_DAG.items()} for role in roles
    }


def dag_permissions(role: str) -> set[tuple[str, str]]:
    """The DAG-level (action, resource) pairs ``role`` holds."""
    pairs: set[tuple[str, str]] = set()
    for dag_id, roles in DAG_ROLES.items():
        if role in roles:
            for resource, actions in RUN_DAG.items():
                pairs.update(
                    (action, _DAG_RESOURCE_PREFIX[resource] + dag_id) for action in actions
                )
    return pairs


def desired_permissions(
    viewer_permissions: Iterable[tuple[str, str]],
) -> dict[str, set[tuple[str, str]]]:
    """Every (action, resource) pair each role should hold.

    :param viewer_permissions: the FAB Viewer role's pairs (read access to everything).
    """
    viewer = set(viewer_permissions)
    return {
        role: viewer | set(EXTRA_PERMISSIONS[role]) | dag_permissions(role)
        for role in (DEVELOPER, RELEASE_MANAGER)
    }


def sync_roles(security_manager: Any) -> dict[str, dict[str, list[str]]]:
    """Create or update both roles to hold exactly :func:`desired_permissions`.

    :param security_manager: the FAB auth manager's security manager (``appbuilder.sm``).
    :return: per role, the permissions ``added`` and ``removed``, as "action on resource".
    """
    changes: dict[str, dict[str, list[str]]] = {}
    desired = desired_permissions(security_manager.VIEWER_PERMISSIONS)
    for role_name, wanted in desired.items():
        role = security_manager.find_role(role_name) or security_manager.add_role(role_name)
        held = {(p.action.name, p.resource.name): p for p in role.permissions}
        added, removed = [], []
        for action, resource in sorted(set(wanted) - set(held)):
            permission = security_manager.create_permission(action, resource)
            security_manager.add_permission_to_role(role, permission)
            added.append(f"{action} on {resource}")
        for pair in sorted(set(held) - set(wanted)):
            security_manager.remove_permission_from_role(role, held[pair])
            removed.append(f"{pair[0]} on {pair[1]}")
        changes[role_name] = {"added": added, "removed": removed}
    return changes
