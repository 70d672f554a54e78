"""The service's Kubernetes manifest agrees with its catalog entry."""

from __future__ import annotations

import yaml

from tests.sample_service.support import SERVICE_TREE


def test_deployment_matches_the_catalog(hello_api) -> None:
    documents = list(
        yaml.safe_load_all(
            (SERVICE_TREE / "deploy" / "deployment.yaml").read_text(encoding="utf-8")
        )
    )
    assert [d["kind"] for d in documents] == ["Deployment", "Service"]
    deployment, service = documents
    target = hello_api.deploy
    assert deployment["metadata"]["name"] == target.deployment
    assert {deployment["metadata"]["namespace"], service["metadata"]["namespace"]} == {
        target.namespace
    }
    spec = deployment["spec"]
    assert spec["replicas"] == target.replicas
    assert spec["progressDeadlineSeconds"] <= 60
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]

    (container,) = spec["template"]["spec"]["containers"]
    assert container["name"] == target.container
    assert container["image"] == "${IMAGE}"
    assert container["ports"][0]["containerPort"] == 8080
    assert container["readinessProbe"]["httpGet"] == {"path": hello_api.health.path, "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 8080}
    assert {"name": "ENVIRONMENT", "value": "production"} in container["env"]
    assert service["spec"]["ports"][0]["targetPort"] == 8080
