"""The CI step as DAG files declare it: light to import, the pod operator built at run time.

Importing ``KubernetesPodOperator`` loads the Kubernetes clients, which DAG files must not pay
for on every parse. :class:`CiStepOperator` carries the same arguments as
:class:`operators.ci.step.StepPodOperator` and builds one inside ``execute`` (and again when a
deferred run resumes), so the scheduler and DAG processor never import the clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.configuration import conf

if TYPE_CHECKING:
    from airflow.sdk import Context

    from operators.ci.records import RecorderFactory
    from operators.ci.step import StepPodOperator


class CiStepOperator(BaseOperator):
    """Run a service's catalog step as a pod in the CI cluster (see ``StepPodOperator``).

    :param service: catalog name of the service. (templated)
    :param step: build, test, scan... (templated)
    :param git_ref: commit id or safe branch/tag name to check out. (templated)
    :param digest: image digest the results belong to, for the records. (templated)
    :param timeout_minutes: limit for the step, empty for the catalog's. (templated)
    :param required_results: result kinds the step must report; default by step name.
    :param image_alias: AssetAlias name an ``image`` result is published through.
    :param deferrable: wait in the triggerer; from ``[operators] default_deferrable``.
    :param recorder_factory: opens the records store; default the platform records.
    :param pod_options: further ``KubernetesPodOperator`` arguments (e.g. ``poll_interval``,
        ``schedule_timeout_seconds``, ``kubernetes_conn_id``).
    """

    template_fields: Sequence[str] = ("service", "step", "git_ref", "digest", "timeout_minutes")
    ui_color = "#e4f0fb"

    def __init__(
        self,
        *,
        service: str,
        step: str,
        git_ref: str,
        digest: str | None = None,
        timeout_minutes: int | str | None = None,
        required_results: Sequence[str] | None = None,
        image_alias: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        recorder_factory: RecorderFactory | None = None,
        pod_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.step = step
        self.git_ref = git_ref
        self.digest = digest
        self.timeout_minutes = timeout_minutes
        self.required_results = required_results
        self.image_alias = image_alias
        self.deferrable = deferrable
        self.recorder_factory = recorder_factory
        self.pod_options = dict(pod_options or {})
        self._pod_operator: StepPodOperator | None = None

    def pod_operator(self) -> StepPodOperator:
        """The ``StepPodOperator`` doing the work, with this task's rendered arguments."""
        from operators.ci.step import StepPodOperator

        if self._pod_operator is None:
            self._pod_operator = StepPodOperator(
                task_id=self.task_id,
                service=self.service,
                step=self.step,
                git_ref=self.git_ref,
                digest=self.digest,
                timeout_minutes=self.timeout_minutes,
                required_results=self.required_results,
                image_alias=self.image_alias,
                deferrable=self.deferrable,
                recorder_factory=self.recorder_factory,
                execution_timeout=self.execution_timeout,
                **self.pod_options,
            )
        return self._pod_operator

    def execute(self, context: Context) -> Any:
        return self.pod_operator().run_step(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        return self.pod_operator().execute_complete(context, event)

    def on_kill(self) -> None:
        if self._pod_operator is not None:
            self._pod_operator.on_kill()
