"""Triggering a pipeline through Airflow's REST API: good conf starts a run, bad conf is a 4xx.

Every refusal must name the field at fault, must not be a 5xx, and must leave no DAG run behind.
"""

from __future__ import annotations

import pytest

from tests.api.harness import ApiServer, dag_runs

DAG_ID = "delivery_pipeline"
GOOD = {"service": "hello-api", "git_ref": "main"}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _trigger(server: ApiServer, conf: object) -> object:
    return server.trigger(DAG_ID, {"logical_date": None, "conf": conf})


def test_valid_conf_starts_a_queued_run(server: ApiServer) -> None:
    before = len(dag_runs(DAG_ID))
    answer = _trigger(server, {**GOOD, "git_ref": COMMIT})
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["state"] == "queued"
    assert run["conf"]["service"] == "hello-api"
    assert run["conf"]["git_ref"] == COMMIT
    runs = dag_runs(DAG_ID)
    assert len(runs) == before + 1
    assert (DAG_ID, run["dag_run_id"], run["conf"]) in runs


HOSTILE_REFS = [
    "main; rm -rf /",
    "$(id)",
    "`id`",
    "--upload-pack=x",
    "-c core.sshCommand=x",
    "main\nrm -rf /",
    "main\n",
    "release/../../etc",
    "main && curl x",
    "ref@{0}",
    "a" * 201,
    "",
]


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        pytest.param({**GOOD, "service": "no-such-service"}, "service", id="unknown-service"),
        pytest.param({**GOOD, "service": 7}, "service", id="service-wrong-type"),
        pytest.param({**GOOD, "service": ["hello-api"]}, "service", id="service-list"),
        pytest.param({**GOOD, "git_ref": 42}, "git_ref", id="git-ref-wrong-type"),
        pytest.param({**GOOD, "git_ref": None}, "git_ref", id="git-ref-null"),
        pytest.param({**GOOD, "git_ref": {"$ne": ""}}, "git_ref", id="git-ref-object"),
        *(
            pytest.param({**GOOD, "git_ref": ref}, "git_ref", id=f"hostile-{i}")
            for i, ref in enumerate(HOSTILE_REFS)
        ),
        pytest.param({**GOOD, "service": "hello-api; id"}, "service", id="hostile-service"),
        pytest.param({"git_ref": "main"}, "service", id="service-missing"),
        pytest.param({"service": "hello-api"}, "git_ref", id="git-ref-missing"),
    ],
)
def test_bad_conf_is_refused_naming_the_field(server: ApiServer, conf: dict, field: str) -> None:
    before = dag_runs()
    answer = _trigger(server, conf)
    assert answer.status_code == 400, answer.text
    assert f"param {field}" in answer.json()["detail"]
    assert dag_runs() == before


IMAGE = "registry.local:5000/order-service@sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        pytest.param({"service": "order-service"}, "image", id="image-missing"),
        pytest.param(None, "service", id="no-conf"),
        pytest.param(
            {"service": "order-service", "image": "order-service:latest"},
            "image",
            id="image-not-pinned",
        ),
        pytest.param(
            {"service": "order-service", "image": IMAGE + "\n"}, "image", id="image-newline"
        ),
        pytest.param(
            {"service": "order-service", "image": "$(id)@sha256:" + "b" * 64},
            "image",
            id="image-hostile",
        ),
    ],
)
def test_release_without_a_valid_image_is_refused(
    server: ApiServer, conf: dict | None, field: str
) -> None:
    before = dag_runs()
    answer = server.trigger("dual_site_release", {"logical_date": None, "conf": conf})
    assert answer.status_code == 400, answer.text
    assert f"param {field}" in answer.json()["detail"]
    assert dag_runs() == before


@pytest.mark.parametrize("conf", [[1, 2], "service=hello-api", 3, True], ids=repr)
def test_conf_that_is_not_an_object_is_refused(server: ApiServer, conf: object) -> None:
    before = dag_runs()
    answer = _trigger(server, conf)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["detail"]
    assert any(problem["loc"][-1] == "conf" for problem in problems), problems
    assert dag_runs() == before


def test_body_without_logical_date_or_with_unknown_fields_is_refused(server: ApiServer) -> None:
    before = dag_runs()
    missing = server.trigger(DAG_ID, {"conf": GOOD})
    assert missing.status_code == 422
    assert any(p["loc"][-1] == "logical_date" for p in missing.json()["detail"])
    extra = server.trigger(DAG_ID, {"logical_date": None, "conf": GOOD, "cmd": "id"})
    assert extra.status_code == 422
    assert any(p["loc"][-1] == "cmd" for p in extra.json()["detail"])
    assert dag_runs() == before


def test_body_that_is_not_json_is_refused(server: ApiServer) -> None:
    before = dag_runs()
    answer = server.client.post(
        f"/api/v2/dags/{DAG_ID}/dagRuns",
        content=b"{not json",
        headers={**server.auth(), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert dag_runs() == before
