"""The dual-site release as a task group: preflight, migration, site by site, approvals, rollback.

``release_stage(service, image)`` takes templated strings, so the same group serves the
``dual_site_release`` DAG (``{{ params.service }}``) and the delivery pipeline (an XCom pull of
the built image). Site groups follow the catalog's release order: the secondary site first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import TaskGroup

EXTERNAL_RETRY = {
    "retries": 2,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=5),
}


def _retrying(minutes: float, retries: int = 2) -> dict[str, Any]:
    return {**EXTERNAL_RETRY, "retries": retries, "execution_timeout": timedelta(minutes=minutes)}


def release_stage(
    service: str,
    image: str,
    *,
    bake_seconds: str = "",
    dry_run: str = "False",
    freeze_override_reason: str = "",
    group_id: str = "release",
) -> TaskGroup:
    """Wire the release of ``image`` of ``service`` to both sites; return the task group.

    :param service: catalog name of the service (templated string).
    :param image: digest-pinned image reference (templated string).
    :param bake_seconds: bake time override, empty for the catalog's (templated string).
    :param dry_run: "True" to stop after the preflight checks (templated string).
    :param freeze_override_reason: reason to release inside a freeze window (templated string).
    :param group_id: id of the task group.
    """
    from airflow.sdk import TriggerRule

    from include.catalog import load_catalog
    from operators.release.approval import FREEZE_OVERRIDE, SECOND_SITE, ReleaseApprovalOperator
    from operators.release.migrate import SchemaMigrationOperator
    from operators.release.preflight import (
        ReleaseCompleteOperator,
        ReleaseFinishOperator,
        ReleasePreflightOperator,
    )
    from operators.release.rollout import DeploymentRollbackOperator, DeploymentRolloutOperator
    from operators.release.traffic import (
        ReleaseBakeOperator,
        SiteDrainOperator,
        SiteReadmitOperator,
        SiteVerifyOperator,
        TrafficRestoreOperator,
    )

    catalog = load_catalog()
    first, second = catalog.release_order()
    with TaskGroup(group_id=group_id, tooltip="Release one image to both sites") as group:
        preflight_id = group.child_id("preflight")
        common = {"service": service, "image": image, "preflight_task_id": preflight_id}

        preflight = ReleasePreflightOperator(
            task_id="preflight",
            freeze_override_reason=freeze_override_reason,
            checks_only=dry_run,
            doc_md="Green records, freeze windows, both sites and the gateway answer; then the release lock.",
            **common,
            **_retrying(5),
        )
        approve_override = ReleaseApprovalOperator(
            task_id="approve_freeze_override",
            service=service,
            image=image,
            purpose=FREEZE_OVERRIDE,
            preflight_task_id=preflight_id,
            skip_when_not_needed=False,
            subject=f"Override a release freeze for {service}?",
            body="A freeze window is active.",
            **_retrying(5, retries=1),
        )
        migrate = SchemaMigrationOperator(
            task_id="migrate_schema",
            service=service,
            release_image=image,
            **_retrying(30, retries=1),
        )
        preflight >> approve_override >> migrate

        tasks: dict[str, dict[str, Any]] = {}
        for site in (first, second):
            with TaskGroup(
                group_id=f"{site.role}_site", tooltip=f"Release to site {site.name}"
            ) as site_group:
                per_site = {**common, "site": site.name}
                drain = SiteDrainOperator(
                    task_id="drain_traffic",
                    trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
                    **per_site,
                    **_retrying(15),
                )
                rollout = DeploymentRolloutOperator(task_id="rollout", **per_site, **_retrying(40))
                verify = SiteVerifyOperator(
                    task_id="verify_health", **per_site, **_retrying(10, retries=1)
                )
                readmit = SiteReadmitOperator(
                    task_id="readmit_traffic", **per_site, **_retrying(60, retries=1)
                )
                bake = ReleaseBakeOperator(
                    task_id="bake",
                    bake_seconds=bake_seconds,
                    **per_site,
                    **_retrying(70, retries=1),
                )
                drain >> rollout >> verify >> readmit >> bake
            tasks[site.name] = {
                "group": site_group,
                "drain": drain,
                "rollout": rollout,
                "bake": bake,
                "group_id": site_group.group_id,
            }

        [approve_override, migrate] >> tasks[first.name]["drain"]
        approve_second = ReleaseApprovalOperator(
            task_id="approve_second_site",
            service=service,
            image=image,
            purpose=SECOND_SITE,
            preflight_task_id=preflight_id,
            subject=f"Release {service} to site {second.name}?",
            body=f"Site {first.name} runs `{image}` and has baked. Approve to release site {second.name}; reject to back {first.name} out.",
            **_retrying(5, retries=1),
        )
        tasks[first.name]["bake"] >> approve_second
        [tasks[first.name]["bake"], approve_second] >> tasks[second.name]["drain"]

        final_bake_id = tasks[second.name]["bake"].task_id
        rollbacks = []
        for site in (second, first):
            rollback = DeploymentRollbackOperator(
                task_id="rollback",
                task_group=tasks[site.name]["group"],
                rollout_task_id=tasks[site.name]["rollout"].task_id,
                finished_task_id=final_bake_id,
                trigger_rule=TriggerRule.ALL_DONE,
                site=site.name,
                **common,
                **_retrying(40, retries=3),
            )
            rollback.set_upstream(tasks[site.name]["bake"])
            if rollbacks:
                rollbacks[-1] >> rollback
            rollbacks.append(rollback)

        complete = ReleaseCompleteOperator(task_id="complete", **common, **_retrying(5))
        tasks[second.name]["bake"] >> complete

        restore = TrafficRestoreOperator(
            task_id="restore_traffic", **common, **_retrying(5, retries=3)
        )
        finish = ReleaseFinishOperator(
            task_id="finish",
            complete_task_id=complete.task_id,
            rollback_task_ids=[r.task_id for r in rollbacks],
            **common,
            **_retrying(5, retries=3),
        )
        [complete, rollbacks[-1]] >> restore >> finish
        restore.as_teardown(setups=preflight)
        finish.as_teardown(setups=preflight)
    return group
