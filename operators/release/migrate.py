"""The schema migration of a release: the catalog's ``migrate`` step, once, on the primary site's cluster."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class SchemaMigrationOperator(BaseOperator):
    """Run the service's ``migrate`` step as a pod in the primary site's cluster; skip when it has none.

    The pod (a KubernetesPodOperator built at run time, since the service is a run parameter) takes
    its image, command, environment and resources from the catalog, and runs in the service's
    namespace on the primary site.

    :param service: catalog name of the service. (templated)
    :param release_image: the image being released, given to the step as ``RELEASE_IMAGE``. (templated)
    """

    template_fields: Sequence[str] = ("service", "release_image")
    ui_color = "#d1c4e9"

    def __init__(self, *, service: str, release_image: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.release_image = release_image

    def execute(self, context: Context) -> Any:
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from airflow.sdk.exceptions import AirflowSkipException
        from kubernetes.client import models as k8s

        from include.catalog import load_catalog

        catalog = load_catalog()
        service = catalog.service(self.service)
        step = service.steps.get("migrate")
        if step is None:
            raise AirflowSkipException(f"{self.service} has no migrate step; no schema migration")
        limits = {k: v for k, v in (("cpu", step.cpu), ("memory", step.memory)) if v}
        env = {**step.env, "RELEASE_IMAGE": self.release_image}
        pod = KubernetesPodOperator(
            task_id=self.task_id,
            name=f"{service.name}-migrate",
            kubernetes_conn_id=catalog.primary.kubernetes_conn_id,
            namespace=service.deploy.namespace,
            image=step.image,
            cmds=list(step.command),
            arguments=list(step.args),
            env_vars=[k8s.V1EnvVar(name=k, value=v) for k, v in env.items()],
            container_resources=k8s.V1ResourceRequirements(
                requests=limits or None, limits=limits or None
            ),
            get_logs=True,
            on_finish_action="delete_succeeded_pod",
            startup_timeout_seconds=step.timeout_minutes * 60,
        )
        self.log.info(
            "schema migration service=%s site=%s image=%s",
            self.service,
            catalog.primary.name,
            step.image,
        )
        return pod.execute(context)
