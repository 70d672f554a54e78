"""One Kubernetes API client per site, and the few Deployment calls a release makes.

Connection contract: one Airflow connection of type ``kubernetes`` per site (the catalog's
``kubernetes_conn_id``), with exactly one of the extras ``kube_config_path``, ``kube_config``
or ``in_cluster`` and optionally ``cluster_context``, as the cncf-kubernetes provider reads them.

Every client gets its own ``Configuration`` object: the kubernetes config loaders otherwise set a
process-wide default, and a release talks to two clusters from one process. (The provider's
``in_cluster`` path ignores the explicit configuration; it only fits a worker that runs inside the
one cluster it targets.)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
API_TIMEOUT_SECONDS = 15.0


class KubeCallError(RuntimeError):
    """A Kubernetes API call of a release failed; the message names the site and the object."""


def site_api_client(conn_id: str) -> ApiClient:
    """A sync ApiClient for the cluster behind the Airflow connection ``conn_id``, never the process default."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes import client

    hook = KubernetesHook(conn_id=conn_id, client_configuration=client.Configuration())
    return hook.get_conn()


class SiteDeployments:
    """Read and change one site's Deployments through an explicit ApiClient.

    :param site: the site's name, for messages.
    :param api_client: the site's ApiClient (see :func:`site_api_client`).
    """

    def __init__(self, site: str, api_client: ApiClient) -> None:
        self.site = site
        self.api_client = api_client

    @classmethod
    def for_connection(cls, site: str, conn_id: str) -> SiteDeployments:
        return cls(site, site_api_client(conn_id))

    def close(self) -> None:
        self.api_client.close()

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from kubernetes.client.rest import ApiException

        try:
            response = func(
                *args, _preload_content=False, _request_timeout=API_TIMEOUT_SECONDS, **kwargs
            )
        except ApiException as err:
            raise KubeCallError(
                f"site {self.site}: {what} failed: HTTP {err.status} {err.reason}: {_short(err.body)}"
            ) from None
        except Exception as err:  # urllib3 errors: the API did not answer
            raise KubeCallError(
                f"site {self.site}: {what} failed: the Kubernetes API did not answer ({err})"
            ) from None
        data: dict[str, Any] = json.loads(response.data or b"{}")
        return data

    def ping(self) -> str:
        """Ask the API server for its version; return it as text, or raise KubeCallError."""
        from kubernetes import client

        answer = self._call("GET /version", client.VersionApi(self.api_client).get_code)
        return str(answer.get("gitVersion") or "unknown")

    def get_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        from kubernetes import client

        return self._call(
            f"reading deployment {namespace}/{name}",
            client.AppsV1Api(self.api_client).read_namespaced_deployment,
            name,
            namespace,
        )

    def list_pods(self, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        from kubernetes import client

        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        answer = self._call(
            f"listing pods {namespace} {label_selector}",
            client.CoreV1Api(self.api_client).list_namespaced_pod,
            namespace,
            label_selector=label_selector,
        )
        return list(answer.get("items") or [])

    def set_image(
        self,
        namespace: str,
        name: str,
        container: str,
        image: str,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Strategic-merge patch the container's image (and the Deployment's annotations) in one call."""
        from kubernetes import client

        body: dict[str, Any] = {
            "spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}
        }
        if annotations:
            body["metadata"] = {"annotations": dict(annotations)}
        return self._call(
            f"patching deployment {namespace}/{name} to {image}",
            client.AppsV1Api(self.api_client).patch_namespaced_deployment,
            name,
            namespace,
            body,
            _content_type="application/strategic-merge-patch+json",
        )

    def apply_template(
        self, namespace: str, name: str, template: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replace the Deployment's pod template with ``template`` (as a rollback does)."""
        from kubernetes import client

        body = [{"op": "replace", "path": "/spec/template", "value": dict(template)}]
        api = client.AppsV1Api(self.api_client)
        return self._call(
            f"re-applying the recorded template of deployment {namespace}/{name}",
            api.patch_namespaced_deployment,
            name,
            namespace,
            body,
            _content_type="application/json-patch+json",
        )


def pod_template(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the Deployment's pod template without the fields the API server fills in."""
    template = copy.deepcopy(dict(deployment.get("spec", {}).get("template") or {}))
    metadata = template.get("metadata") or {}
    metadata.pop("creationTimestamp", None)
    template["metadata"] = metadata
    return template


def selector_labels(deployment: Mapping[str, Any]) -> dict[str, str]:
    """The Deployment's ``matchLabels`` selector."""
    labels = deployment.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def _short(body: Any) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        message = json.loads(text).get("message")
        if message:
            return str(message)
    except (ValueError, AttributeError):
        pass
    return text[:300]
