"""Run one catalog step (build, test, scan...) of a service as a pod in the CI cluster.

:class:`StepPodOperator` is a ``KubernetesPodOperator`` whose pod comes from the service catalog:

- an ``emptyDir`` volume ``workspace`` at ``/workspace``;
- init containers that clone the catalog's repository URL and check out the requested ref into
  ``/workspace/src`` with plain argument lists (no shell, ``--`` before every URL and ref), then
  print the commit they checked out;
- the main container ``main`` running the step's command in ``/workspace/src`` with the step's
  env plus ``SERVICE``, ``GIT_REF`` (and ``GIT_COMMIT`` when the ref is a commit id), and the
  step's CPU/memory as requests and limits;
- labels ``sre.io/service`` and ``sre.io/step`` besides the provider's (made label-safe whatever
  the task id), and a name ``<service>-<step>-<random>`` (DNS-1123, at most 63 characters).

A restarted task reattaches to its still-running pod instead of starting another; a finished
pod of an earlier try is never picked up (it is marked ``already_checked``, failed ones are kept
for debugging). The log streams into the task log exactly once (``StepPodManager`` when
synchronous, ``StepPodTrigger`` when deferred), and the step's ``::sre-result::`` lines are
parsed: image (XCom ``image``, ``digest``, ``commit`` and an asset event), JUnit (XCom
``tests``), coverage (XCom ``coverage``), findings (XCom ``findings``), SonarQube task (XCom
``sonarqube``). A failure raises one line that says why. Every run is recorded.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.pod_manager import OnFinishAction
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s
from kubernetes.client.exceptions import ApiException

from include.params import InputError, check_git_ref
from operators.ci.failure import (
    TIMEOUT_MESSAGE,
    StartWatch,
    describe_failure,
    exit_code,
    startup_timeout_message,
)
from operators.ci.logstream import ResultError
from operators.ci.naming import label_value, pod_name
from operators.ci.pod_manager import StepPodManager, StepTimeout
from operators.ci.records import RecorderFactory, platform_records, task_ref
from operators.ci.retry import call_with_retry

if TYPE_CHECKING:
    from airflow.sdk import Context

    from include.catalog import Service, Step

CHECKOUT_IMAGE = "alpine/git:v2.47.2"
WORKSPACE = "/workspace"
SOURCE_DIR = f"{WORKSPACE}/src"
MAIN_CONTAINER = "main"
INIT_CONTAINERS = ("clone", "checkout", "commit")
DEFAULT_RESULTS: Mapping[str, tuple[str, ...]] = {
    "build": ("image",),
    "test": ("junit",),
    "scan": ("findings",),
}
MAX_TIMEOUT_MINUTES = 24 * 60
# Seconds past the step's own limit before the operator gives up on the pod itself.
DEADLINE_GRACE_SECONDS = 60
MAX_REDEFERS = 3
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_TERMINAL = ("Succeeded", "Failed")


class StepFailed(AirflowException):
    """The step's pod failed (exit code, OOM, pull error, unschedulable, timeout): retryable."""


class StepRejected(AirflowFailException):
    """A verdict a retry cannot change: bad input, failing tests, unreadable results."""


@dataclass
class StepRun:
    """How a step's pod ended and what it reported."""

    status: str
    message: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    result_errors: list[str] = field(default_factory=list)
    tails: dict[str, list[str]] = field(default_factory=dict)
    cursors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def commit(self) -> str | None:
        """The commit the init container checked out, from its output."""
        for line in reversed(self.tails.get("commit", [])):
            if _COMMIT.fullmatch(line.strip()):
                return line.strip()
        return None


@dataclass
class Outcome:
    """What the results of a step say: values for XCom and a verdict."""

    values: dict[str, Any] = field(default_factory=dict)
    rejection: str | None = None
    tests: Any = None
    coverage: Any = None
    findings: list[Any] | None = None


class StepPodOperator(KubernetesPodOperator):
    """Run a service's catalog step as a pod and judge what it reports.

    :param service: catalog name of the service. (templated)
    :param step: the step of the service's catalog entry: build, test, scan... (templated)
    :param git_ref: commit id or safe branch/tag name to check out. (templated)
    :param digest: digest of the image the step's results belong to, for the records;
        empty when unknown. (templated)
    :param timeout_minutes: limit for the step, empty for the catalog's
        ``timeout_minutes``. (templated)
    :param required_results: result kinds the step must report; default by step name
        (build: image, test: junit, scan: findings).
    :param checkout_image: image of the init containers that check the code out.
    :param image_alias: name of the AssetAlias an ``image`` result is published through, as
        an event on the asset ``sre-image://<service>`` with the digest in its extra.
    :param recorder_factory: opens the records store; default the platform records.
    :param kwargs: passed to ``KubernetesPodOperator``; the connection and namespace default
        to the catalog's CI cluster, ``on_finish_action`` to ``delete_succeeded_pod``.
    """

    template_fields: Sequence[str] = (
        *KubernetesPodOperator.template_fields,
        "service",
        "step",
        "git_ref",
        "digest",
        "timeout_minutes",
    )
    BASE_CONTAINER_NAME = MAIN_CONTAINER

    def __init__(
        self,
        *,
        service: str,
        step: str,
        git_ref: str,
        digest: str | None = None,
        timeout_minutes: int | str | None = None,
        required_results: Sequence[str] | None = None,
        checkout_image: str = CHECKOUT_IMAGE,
        image_alias: str | None = None,
        recorder_factory: RecorderFactory | None = None,
        schedule_timeout_seconds: int = 300,
        startup_timeout_seconds: int = 600,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("kubernetes_conn_id", None)
        kwargs.setdefault("on_finish_action", OnFinishAction.DELETE_SUCCEEDED_POD.value)
        kwargs.setdefault("log_events_on_startup", False)
        kwargs.setdefault("base_container_name", MAIN_CONTAINER)
        kwargs.setdefault("random_name_suffix", False)
        kwargs.setdefault("get_logs", True)
        super().__init__(
            schedule_timeout_seconds=schedule_timeout_seconds,
            startup_timeout_seconds=startup_timeout_seconds,
            **kwargs,
        )
        self.service = service
        self.step = step
        self.git_ref = git_ref
        self.digest = digest
        self.timeout_minutes = timeout_minutes
        self.required_results = tuple(required_results) if required_results is not None else None
        self.checkout_image = checkout_image
        self.image_alias = image_alias
        self.recorder_factory = recorder_factory
        self._step_deadline: float | None = None

    # -- the pod -----------------------------------------------------------------------------

    @staticmethod
    def _get_ti_pod_labels(
        context: Context | None = None, include_try_number: bool = True
    ) -> dict[str, str]:
        """The provider's task labels, made valid for any task or run id."""
        if not context:
            return {}
        ti = context["ti"]
        labels = {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": context["run_id"],
            "kubernetes_pod_operator": "True",
        }
        if ti.map_index is not None and ti.map_index >= 0:
            labels["map_index"] = str(ti.map_index)
        if include_try_number:
            labels["try_number"] = str(ti.try_number)
        return {key: label_value(str(value)) for key, value in labels.items()}

    @cached_property
    def pod_manager(self) -> StepPodManager:
        return StepPodManager(
            self.client, result_container=self.base_container_name, deadline=self._step_deadline
        )

    def prepare(self, context: Context) -> None:
        """Check the inputs again and turn the catalog step into this operator's pod fields."""
        from include.catalog import load_catalog

        try:
            check_git_ref(self.git_ref)
        except InputError as err:
            raise StepRejected(f"refused: {err}") from None
        catalog = load_catalog()
        try:
            service = catalog.service(str(self.service))
        except KeyError as err:
            raise StepRejected(f"refused: {err.args[0]}") from None
        step = service.steps.get(str(self.step))
        if step is None:
            raise StepRejected(
                f"refused: service {service.name} has no {self.step!r} step in the catalog "
                f"(it has: {', '.join(sorted(service.steps))})"
            )
        minutes = self._timeout(step)
        self.kubernetes_conn_id = self.kubernetes_conn_id or catalog.ci_kubernetes_conn_id
        self.namespace = self.namespace or catalog.ci_namespace
        self.name = pod_name(service.name, str(self.step))
        self.image = step.image
        self.cmds = list(step.command)
        self.arguments = list(step.args)
        self.env_vars = self._env(service, step)
        self.container_resources = _resources(step)
        self.labels = {
            **(self.labels or {}),
            "sre.io/service": label_value(service.name),
            "sre.io/step": label_value(str(self.step)),
        }
        self.volumes = [k8s.V1Volume(name="workspace", empty_dir=k8s.V1EmptyDirVolumeSource())]
        self.volume_mounts = [k8s.V1VolumeMount(name="workspace", mount_path=WORKSPACE)]
        self.init_containers = self._checkout_containers(service.repository, self.git_ref)
        self.active_deadline_seconds = minutes * 60
        self._step_deadline = time.time() + minutes * 60 + DEADLINE_GRACE_SECONDS

    def _timeout(self, step: Step) -> int:
        value = self.timeout_minutes
        if value in (None, "", "None"):
            return step.timeout_minutes
        try:
            minutes = int(str(value))
        except ValueError:
            raise StepRejected(f"refused: timeout_minutes {value!r} is not a number") from None
        if not 1 <= minutes <= MAX_TIMEOUT_MINUTES:
            raise StepRejected(
                f"refused: timeout_minutes {minutes} is outside 1..{MAX_TIMEOUT_MINUTES}"
            )
        return minutes

    def _env(self, service: Service, step: Step) -> list[k8s.V1EnvVar]:
        env = {**dict(step.env), "SERVICE": service.name, "GIT_REF": self.git_ref, "CI": "true"}
        if _COMMIT.fullmatch(self.git_ref):
            env["GIT_COMMIT"] = self.git_ref
        return [k8s.V1EnvVar(name=key, value=str(value)) for key, value in env.items()]

    def _checkout_containers(self, repository: str, ref: str) -> list[k8s.V1Container]:
        """Clone, check out and name the commit: argument lists only, nothing a shell reads."""
        mounts = [k8s.V1VolumeMount(name="workspace", mount_path=WORKSPACE)]
        resources = k8s.V1ResourceRequirements(
            requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "512Mi"}
        )
        git = ["git", "-c", "advice.detachedHead=false", "-c", f"safe.directory={SOURCE_DIR}"]
        commands = {
            "clone": [
                *git,
                "clone",
                "--quiet",
                "--no-checkout",
                # Branches become local refs, so any branch name checks out like a tag does.
                "--config",
                "remote.origin.fetch=+refs/heads/*:refs/heads/*",
                "--",
                repository,
                SOURCE_DIR,
            ],
            "checkout": [*git, "-C", SOURCE_DIR, "checkout", "--quiet", "--detach", ref, "--"],
            "commit": [*git, "-C", SOURCE_DIR, "rev-parse", "--verify", "HEAD^{commit}"],
        }
        return [
            k8s.V1Container(
                name=name,
                image=self.checkout_image,
                command=command,
                volume_mounts=mounts,
                resources=resources,
            )
            for name, command in commands.items()
        ]

    def build_pod_request_obj(
        self, context: Context | None = None, *, dry_run: bool = False
    ) -> k8s.V1Pod:
        pod = super().build_pod_request_obj(context, dry_run=dry_run)
        main = next(c for c in pod.spec.containers if c.name == self.base_container_name)
        main.working_dir = SOURCE_DIR
        return pod

    # -- finding our own pod -----------------------------------------------------------------

    def _owns(self, pod: k8s.V1Pod, context: Context) -> bool:
        """Whether ``pod`` carries this task instance's labels (dag, task, run, map index)."""
        wanted = self._get_ti_pod_labels(context, include_try_number=False)
        labels = pod.metadata.labels or {}
        return all(labels.get(key) == value for key, value in wanted.items())

    def _candidates(self, context: Context, namespace: str) -> list[k8s.V1Pod]:
        selector = self._build_find_pod_label_selector(context, exclude_checked=True)
        listed = call_with_retry(
            lambda: self.client.list_namespaced_pod(namespace=namespace, label_selector=selector),
            "list pods of this task",
            logger=self.log,
        )
        pods: dict[str, k8s.V1Pod] = {pod.metadata.name: pod for pod in listed.items}
        stored = self._pod_from_state_store(context)
        if stored is not None and stored.metadata.name not in pods:
            pods[stored.metadata.name] = stored
        return [pod for pod in pods.values() if self._owns(pod, context)]

    def _pod_from_state_store(self, context: Context) -> k8s.V1Pod | None:
        store = context.get("task_state_store")
        stored = store.get("pod_identifier") if store is not None else None
        if not isinstance(stored, dict) or not isinstance(stored.get("name"), str):
            return None
        try:
            pod: k8s.V1Pod = call_with_retry(
                lambda: self.client.read_namespaced_pod(stored["name"], stored["namespace"]),
                "read the stored pod",
                logger=self.log,
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        if (pod.metadata.labels or {}).get(self.POD_CHECKED_KEY) == "True":
            return None
        return pod

    def get_or_create_pod(self, pod_request_obj: k8s.V1Pod, context: Context) -> k8s.V1Pod:
        """Reattach to this task's running pod, or to a finished one of this very try; else create.

        Finished pods of earlier tries are marked ``already_checked`` (succeeded ones deleted) and
        never picked up; extra running pods of this task instance are deleted.
        """
        namespace = pod_request_obj.metadata.namespace
        try_number = str(context["ti"].try_number)
        chosen: k8s.V1Pod | None = None
        if self.durable:
            pods = self._candidates(context, namespace)
            running = [pod for pod in pods if _phase(pod) not in _TERMINAL]
            running.sort(key=_try_of, reverse=True)
            same_try_done = [
                pod for pod in pods if _phase(pod) in _TERMINAL and _try_of(pod) == int(try_number)
            ]
            chosen = running[0] if running else (same_try_done[0] if same_try_done else None)
            for pod in pods:
                if pod is chosen:
                    continue
                self.log.info(
                    "retiring pod=%s of try=%s phase=%s",
                    pod.metadata.name,
                    _try_of(pod),
                    _phase(pod),
                )
                self.patch_already_checked(pod, reraise=False)
                if _phase(pod) not in _TERMINAL or self._should_delete(pod):
                    self.pod_manager.delete_pod(pod)
        if chosen is not None:
            self.log.info(
                "reattaching to pod=%s namespace=%s try=%s phase=%s",
                chosen.metadata.name,
                namespace,
                _try_of(chosen),
                _phase(chosen),
            )
            self._persist_pod_identity_to_task_state_store(context, chosen)
            return chosen
        created = self.pod_manager.create_pod(pod_request_obj)
        self.log.info(
            "created pod=%s namespace=%s service=%s step=%s ref=%s",
            created.metadata.name,
            namespace,
            self.service,
            self.step,
            self.git_ref,
        )
        if self.durable:
            self._persist_pod_identity_to_task_state_store(context, created)
        return pod_request_obj

    def _should_delete(self, pod: k8s.V1Pod) -> bool:
        """Whether a pod in its current phase goes, per ``on_finish_action``."""
        action = self.on_finish_action
        phase = _phase(pod)
        return (
            action == OnFinishAction.DELETE_POD
            or (action == OnFinishAction.DELETE_SUCCEEDED_POD and phase == "Succeeded")
            or (action == OnFinishAction.DELETE_ACTIVE_POD and phase not in _TERMINAL)
        )

    # -- running -----------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        return self.run_step(context)

    def run_step(self, context: Context) -> Any:
        """Create or reattach to the pod, then follow it here or in the triggerer."""
        self.prepare(context)
        self.pod_request_obj = self.build_pod_request_obj(context)
        self.pod = self.get_or_create_pod(self.pod_request_obj, context)
        ti = context["ti"]
        ti.xcom_push(key="pod_name", value=self.pod.metadata.name)
        ti.xcom_push(key="pod_namespace", value=self.pod.metadata.namespace)
        if self.deferrable:
            remote = self.pod_manager.read_pod(self.pod)
            if _phase(remote) not in _TERMINAL:
                self._defer(context)
        return self._finish(context, self._follow_here())

    def _follow_here(self) -> StepRun:
        """Follow the pod in this process: each container's log, then how it ended."""
        assert self.pod is not None
        manager = self.pod_manager
        try:
            for container in [*INIT_CONTAINERS, self.base_container_name]:
                watch = StartWatch(
                    container,
                    self.schedule_timeout_seconds,
                    self.startup_timeout_seconds,
                    time.time(),
                )
                delay = 0.1
                while (
                    verdict := watch.verdict(manager.read_pod(self.pod), time.time())
                ) == watch.WAIT:
                    manager._check_deadline()
                    time.sleep(delay)
                    delay = min(float(self.startup_check_interval_seconds), delay * 1.5)
                if verdict == watch.FAILED:
                    return self._failed_run()
                if verdict == watch.TIMEOUT:
                    pod = manager.read_pod(self.pod)
                    message = startup_timeout_message(pod, container, self.startup_timeout_seconds)
                    return self._run("timeout", message)
                manager.fetch_container_logs(self.pod, container, follow=True)
                if container != self.base_container_name:
                    pod = manager.read_pod(self.pod)
                    if exit_code(pod, container) != 0:
                        return self._failed_run(pod)
            pod = self._settled_pod()
        except StepTimeout:
            return self._run("timeout", TIMEOUT_MESSAGE)
        except ApiException as err:
            if err.status != 404:
                raise
            return self._run("failed", "the pod was deleted before the step finished")
        if exit_code(pod, self.base_container_name) == 0:
            return self._run("success", "step succeeded")
        return self._failed_run(pod)

    def _settled_pod(self) -> k8s.V1Pod:
        assert self.pod is not None
        for _ in range(20):
            pod = self.pod_manager.read_pod(self.pod)
            if _phase(pod) in _TERMINAL:
                break
            time.sleep(0.25)
        return pod

    def _run(self, status: str, message: str) -> StepRun:
        assert self.pod is not None
        collector = self.pod_manager.follower(self.pod, self.base_container_name).collector
        followers = {
            key[2]: follower
            for key, follower in self.pod_manager.followers.items()
            if key[:2] == (self.pod.metadata.namespace, self.pod.metadata.name)
        }
        return StepRun(
            status=status,
            message=message,
            results=list(collector.results) if collector else [],
            result_errors=list(collector.errors) if collector else [],
            tails={name: list(f.tail) for name, f in followers.items()},
            cursors={name: f.cursor.to_dict() for name, f in followers.items()},
        )

    def _failed_run(self, pod: k8s.V1Pod | None = None) -> StepRun:
        assert self.pod is not None
        pod = pod if pod is not None else self.pod_manager.read_pod(self.pod)
        try:
            events = list(self.pod_manager.read_pod_events(self.pod).items or [])
        except ApiException as err:
            self.log.warning(
                "cannot read events of pod=%s (HTTP %s)", self.pod.metadata.name, err.status
            )
            events = []
        run = self._run("failed", "")
        run.message = describe_failure(
            pod, self.base_container_name, events=events, tails=run.tails
        )
        return run

    def _defer(self, context: Context) -> None:
        from airflow.sdk import BaseHook

        from operators.ci.triggers import StepPodTrigger

        assert self.pod is not None
        extras = BaseHook.get_connection(str(self.kubernetes_conn_id)).extra_dejson
        trigger_kwargs = dict(self.trigger_kwargs or {})
        log_cursors = trigger_kwargs.pop("_log_cursors", None)
        defer_timeout = None
        if self.execution_timeout is not None:
            start = context["ti"].start_date
            deadline = int(start.timestamp() + self.execution_timeout.total_seconds())
            trigger_kwargs["_execution_deadline"] = deadline
            defer_timeout = datetime.timedelta(seconds=max(deadline - time.time(), 0) + 120)
        trigger = StepPodTrigger(
            pod_name=self.pod.metadata.name,
            pod_namespace=self.pod.metadata.namespace,
            trigger_start_time=datetime.datetime.now(tz=datetime.UTC),
            base_container_name=self.base_container_name,
            kubernetes_conn_id=self.kubernetes_conn_id,
            connection_extras=extras,
            cluster_context=self.cluster_context,
            in_cluster=self.in_cluster,
            poll_interval=self.poll_interval,
            startup_timeout=self.startup_timeout_seconds,
            startup_check_interval=self.startup_check_interval_seconds,
            schedule_timeout=self.schedule_timeout_seconds,
            on_finish_action=self.on_finish_action.value,
            on_kill_action=self.on_kill_action.value,
            termination_grace_period=self.termination_grace_period,
            trigger_kwargs=trigger_kwargs,
            log_events_on_startup=False,
            init_containers=list(INIT_CONTAINERS),
            log_cursors=log_cursors,
            step_deadline=self._step_deadline,
        )
        self.log.info(
            "deferring while pod=%s runs service=%s step=%s",
            trigger.pod_name,
            self.service,
            self.step,
        )
        self.defer(trigger=trigger, method_name="execute_complete", timeout=defer_timeout)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger: judge its event; the log was already shown."""
        self.prepare(context)
        self.pod = k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name=event.get("name"), namespace=event.get("namespace"))
        )
        details = event.get("details") or {}
        run = StepRun(
            status=str(event.get("status")),
            message=str(event.get("message") or ""),
            results=list(details.get("results") or []),
            result_errors=list(details.get("result_errors") or []),
            tails=dict(details.get("tails") or {}),
            cursors=dict(details.get("cursors") or {}),
        )
        if run.status == "error":
            self._redefer_if_running(context, run)
        return self._finish(context, run)

    def trigger_reentry(self, context: Context, event: dict[str, Any]) -> Any:
        return self.execute_complete(context, event)

    def _redefer_if_running(self, context: Context, run: StepRun) -> None:
        """The trigger lost the pod while it still runs: watch it again, from where it stopped."""
        assert self.pod is not None
        count = int((self.trigger_kwargs or {}).get("_redefer_count", 0))
        try:
            remote = self.pod_manager.read_pod(self.pod)
        except ApiException:
            return
        if _phase(remote) in _TERMINAL or count >= MAX_REDEFERS:
            return
        self.log.warning(
            "trigger stopped (%s) while pod=%s runs; deferring again",
            run.message,
            self.pod.metadata.name,
        )
        self.trigger_kwargs = {
            **(self.trigger_kwargs or {}),
            "_redefer_count": count + 1,
            "_log_cursors": run.cursors,
        }
        self._defer(context)

    # -- the verdict -------------------------------------------------------------------------

    def _finish(self, context: Context, run: StepRun) -> Any:
        outcome = self.judge(context, run)
        self._record(context, run, outcome)
        self._dispose_pod(context, run)
        if run.status != "success":
            message = outcome.rejection or run.message or f"step ended with status {run.status}"
            self.log.error("step failed service=%s step=%s: %s", self.service, self.step, message)
            raise (StepRejected if outcome.rejection else StepFailed)(message)
        if outcome.rejection:
            self.log.error(
                "step failed service=%s step=%s: %s", self.service, self.step, outcome.rejection
            )
            raise StepRejected(outcome.rejection)
        self.log.info(
            "step succeeded service=%s step=%s ref=%s", self.service, self.step, self.git_ref
        )
        return outcome.values

    def judge(self, context: Context, run: StepRun) -> Outcome:
        """Parse the results, log what they say, push XComs; the verdict goes in ``rejection``."""
        from operators.ci import results as parse

        outcome = Outcome()
        problems: list[str] = list(run.result_errors)
        test_failure: str | None = None
        kinds = {result.get("kind") for result in run.results}
        required = self.required_results
        if required is None:
            required = DEFAULT_RESULTS.get(str(self.step), ())
        ti = context["ti"]
        for result in run.results:
            try:
                if result.get("kind") == "junit":
                    outcome.tests = parse.parse_junit(result)
                elif result.get("kind") == "coverage":
                    outcome.coverage = parse.parse_cobertura(result)
                elif result.get("kind") == "findings":
                    outcome.findings = [*(outcome.findings or []), *parse.parse_findings(result)]
            except ResultError as err:
                self.log.error("result refused service=%s: %s", self.service, err)
                problems.append(str(err))
        if outcome.tests is not None:
            self.log.info(
                "test results of service=%s ref=%s\n%s",
                self.service,
                self.git_ref,
                outcome.tests.summary_block(),
            )
            outcome.values["tests"] = outcome.tests.to_dict()
            if not outcome.tests.ok:
                failing = outcome.tests.failed + outcome.tests.errors
                named = "; ".join(
                    outcome.tests.describe_case(c) for c in outcome.tests.failed_cases[:5]
                )
                test_failure = f"{failing} of {outcome.tests.total} tests failed: {named}"
        if outcome.coverage is not None:
            self.log.info(
                "coverage service=%s percent=%.2f", self.service, outcome.coverage.percent
            )
            outcome.values["coverage"] = outcome.coverage.to_dict()
        if outcome.findings is not None:
            summary = parse.findings_summary(outcome.findings)
            lines = [f"  {parse.Finding(**item).describe()}" for item in summary["top"]]
            self.log.info(
                "findings service=%s counts=%s by_tool=%s\n%s",
                self.service,
                summary["counts"],
                summary["by_tool"],
                "\n".join(lines) or "  (none)",
            )
            outcome.values["findings"] = summary
        for result in run.results:
            if result.get("kind") == "sonarqube":
                outcome.values["sonarqube"] = {
                    key: result[key] for key in ("ce_task_id", "project_key") if key in result
                }
        if run.status == "success":
            if "image" in kinds:
                try:
                    image = parse.parse_image(
                        next(r for r in run.results if r.get("kind") == "image")
                    )
                except ResultError as err:
                    problems.append(str(err))
                else:
                    outcome.values.update(image.to_dict())
                    self._publish_image(context, image.to_dict())
            missing = [kind for kind in required if kind not in kinds]
            if missing:
                problems.append(
                    f"the step reported no {', '.join(missing)} result; it must print "
                    f'\'::sre-result:: {{"kind": "{missing[0]}", ...}}\' lines'
                )
        if run.commit and "commit" not in outcome.values:
            outcome.values["commit"] = run.commit
        for key, value in outcome.values.items():
            ti.xcom_push(key=key, value=value)
        if test_failure or problems:
            outcome.rejection = test_failure or problems[0]
        return outcome

    def _publish_image(self, context: Context, image: dict[str, str]) -> None:
        self.log.info(
            "built service=%s image=%s digest=%s commit=%s",
            self.service,
            image["image"],
            image["digest"],
            image["commit"],
        )
        if not self.image_alias:
            return
        from airflow.sdk import Asset, AssetAlias

        asset = Asset(uri=f"sre-image://{self.service}", name=f"sre-image-{self.service}")
        context["outlet_events"][AssetAlias(self.image_alias)].add(
            asset, extra={**image, "service": str(self.service), "git_ref": self.git_ref}
        )

    def _record(self, context: Context, run: StepRun, outcome: Outcome) -> None:
        from operators.records import FailedCase, TestCounts

        factory = self.recorder_factory or platform_records
        ref = task_ref(context)
        service = str(self.service)
        commit = outcome.values.get("commit") or run.commit
        failure = (
            None
            if run.status == "success" and not outcome.rejection
            else (outcome.rejection or run.message)
        )
        detail = {"git_ref": self.git_ref, "pod": self.pod.metadata.name if self.pod else None}
        if failure:
            detail["failure"] = failure
        with factory() as records:
            if self.step == "build":
                records.record_build(
                    ref,
                    service=service,
                    commit=commit or self.git_ref,
                    image=outcome.values.get("image"),
                    digest=outcome.values.get("digest"),
                    state="failed" if failure else "success",
                    detail=detail,
                )
            elif self.step == "test":
                tests = outcome.tests
                if tests is not None:
                    counts = TestCounts(tests.total, tests.failed, tests.errors, tests.skipped)
                    cases = [
                        FailedCase(c["name"], c["classname"] or None, c["message"] or None)
                        for c in tests.failed_cases
                    ]
                else:
                    # No report at all: a failed run, never a green one.
                    counts = TestCounts(total=0, errors=1)
                    cases = [FailedCase("(test step)", None, failure or "no JUnit report")]
                records.record_test_report(
                    ref,
                    service=service,
                    counts=counts,
                    failed_cases=cases,
                    commit=commit,
                    digest=self.digest or None,
                    coverage=outcome.coverage.percent if outcome.coverage is not None else None,
                    detail=detail,
                )
            elif failure:
                # A scan that did not finish fails its gate; a finished one is judged by the gate.
                records.record_quality_report(
                    ref,
                    service=service,
                    gate_passed=False,
                    findings={},
                    commit=commit,
                    digest=self.digest or None,
                    tool=str(self.step),
                    detail=detail,
                )

    def _dispose_pod(self, context: Context, run: StepRun) -> None:
        """Delete succeeded pods; mark others checked and keep them, unless still running."""
        if self.pod is None or self._killed:
            return
        try:
            remote = self.pod_manager.read_pod(self.pod)
        except ApiException as err:
            if err.status == 404:
                return
            raise
        if not self._owns(remote, context):
            self.log.warning(
                "not touching pod=%s: it lacks this run's labels", remote.metadata.name
            )
            return
        if run.status == "success" and self._should_delete(remote):
            self.log.info("deleting succeeded pod=%s", remote.metadata.name)
            self.pod_manager.delete_pod(remote)
            return
        self.patch_already_checked(remote, reraise=False)
        if _phase(remote) not in _TERMINAL or self.on_finish_action == OnFinishAction.DELETE_POD:
            self.log.info("deleting pod=%s phase=%s", remote.metadata.name, _phase(remote))
            self.pod_manager.delete_pod(remote)
        else:
            self.log.info("keeping failed pod=%s for debugging", remote.metadata.name)


def _phase(pod: k8s.V1Pod) -> str | None:
    return pod.status.phase if pod.status is not None else None


def _try_of(pod: k8s.V1Pod) -> int:
    try:
        return int((pod.metadata.labels or {}).get("try_number", "0"))
    except ValueError:
        return 0


def _resources(step: Step) -> k8s.V1ResourceRequirements | None:
    amounts = {key: value for key, value in (("cpu", step.cpu), ("memory", step.memory)) if value}
    if not amounts:
        return None
    return k8s.V1ResourceRequirements(requests=dict(amounts), limits=dict(amounts))
