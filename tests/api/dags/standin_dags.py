"""Stand-ins for the pipeline DAGs, used by the API tests only for ids missing from dags/.

Same ids, params (built from include/params.py) and ``access_control`` (include/auth) as the
real DAGs; every task is empty, since the tests only create runs and never execute them.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param

from include.auth import access_control
from include.catalog import load_catalog
from include.params import git_ref_param, image_param, service_param

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _required_service() -> Param:
    return Param(
        type="string",
        enum=load_catalog().service_names,
        description="The service to work on, by its name in the service catalog.",
    )


with DAG(
    "delivery_pipeline",
    schedule=None,
    start_date=START,
    params={"service": _required_service(), "git_ref": git_ref_param()},
    tags=["standin"],
    access_control=access_control("delivery_pipeline"),
):
    EmptyOperator(task_id="build")

for ci_dag_id in ("ci_build", "ci_test", "quality_scan"):
    with DAG(
        ci_dag_id,
        schedule=None,
        start_date=START,
        params={"service": service_param(), "git_ref": git_ref_param()},
        tags=["standin"],
        access_control=access_control(ci_dag_id),
    ):
        EmptyOperator(task_id="run")

with DAG(
    "dual_site_release",
    schedule=None,
    start_date=START,
    params={"service": _required_service(), "image": image_param()},
    tags=["standin"],
    access_control=access_control("dual_site_release"),
):
    ApprovalOperator(task_id="approve_second_site", subject="Release to the second site?")
