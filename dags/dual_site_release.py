"""
# Dual-site release

Releases one **image** (pinned by digest) of one **service** from the service catalog to both
active-active sites, without users noticing, and backs out on its own when the new version is bad.

1. **preflight**: the digest has a green build, test report and quality gate; no freeze window is
   active (or `freeze_override_reason` is given and the override approved); both sites' Kubernetes
   APIs and the gateway answer and both Deployments are settled; then the service's release lock.
2. **migrate_schema**: the service's `migrate` step, once, on the primary site (skipped without one).
3. **secondary site**, then **primary site**: drain its traffic to 0 in steps, roll the Deployment
   to the image and wait for it, verify health, re-admit traffic in the catalog's steps with an
   error-rate check after each, bake.
4. **approve_second_site** sits between the sites when the catalog asks for it.

A failure rolls the failing site back to the template it ran before and restores its traffic; a
failure at the second site, or a rejection, then backs the first site out too, one site at a time.
`restore_traffic` and `finish` are teardowns: whatever happens, traffic ends on healthy sites and
the release lock is given back. Every step is in the platform records (`release_steps`).

Params: `service`, `image`, `bake_seconds` (0..3600, empty = catalog), `dry_run` (checks only),
`freeze_override_reason`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from dags.stages.release import release_stage
from include.params import image_param, service_param

with DAG(
    dag_id="dual_site_release",
    description="Release one image of one service to both sites, site by site, with automatic rollback",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["release", "sre"],
    default_args={"owner": "sre-team"},
    params={
        "service": service_param(),
        "image": image_param(),
        "bake_seconds": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            maximum=3600,
            title="Bake seconds",
            description="How long each site runs at its normal share before the release moves on; empty for the catalog's bake_seconds.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Only run the preflight checks; change nothing.",
        ),
        "freeze_override_reason": Param(
            "",
            type="string",
            maxLength=500,
            title="Freeze override reason",
            description="Why this release may run inside an active freeze window; the override then needs an approval.",
        ),
    },
    render_template_as_native_obj=False,
) as dag:
    release_stage(
        "{{ params.service }}",
        "{{ params.image }}",
        bake_seconds="{{ params.bake_seconds if params.bake_seconds is not none else '' }}",
        dry_run="{{ params.dry_run }}",
        freeze_override_reason="{{ params.freeze_override_reason }}",
    )
