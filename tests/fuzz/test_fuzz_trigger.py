"""Fuzz the REST trigger endpoint's conf: every bad input is a 4xx and starts no run.

At least 1,000 generated bad confs go to ``POST /api/v2/dags/{dag_id}/dagRuns`` for the
pipeline DAGs (CI, delivery, release). Each one has a declared param with a bad value, lacks a
required param (the release's image), or is not an object at all; junk extra keys ride along. No answer may be a 5xx and no DAG run may
appear, so nothing derived from the input ever reaches a pod command.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.params import GIT_REF_PATTERN
from tests.api.harness import ApiServer, dag_runs
from tests.fuzz.strategies import (
    SERVICES,
    bad_git_refs,
    bad_images,
    bad_services,
    hostile_strings,
    is_valid_git_ref,
    is_valid_image,
    json_values,
)

EXAMPLES = 1000
REF_RULE = jsonschema.Draft202012Validator(
    {"type": "string", "pattern": GIT_REF_PATTERN, "minLength": 1, "maxLength": 200}
)
CI_DAGS = ("ci_build", "ci_test", "quality_scan")
IMAGE = "registry.local:5000/hello-api@sha256:" + "c" * 64
GOOD_REFS = {"git_ref": ("main", "release/1.4", "0" * 40), "image": (IMAGE,)}
BAD_VALUES = {"git_ref": bad_git_refs, "image": bad_images, "service": bad_services}


@st.composite
def bad_requests(draw: st.DrawFn) -> tuple[str, Any, str | None]:
    """(dag_id, conf, the param the refusal must name; None for a conf that is not an object).

    A null conf means "no conf": every DAG then lacks its required service; a conf with only
    the service leaves out the other required param (image or git_ref).
    """
    dag_id = draw(st.sampled_from(("delivery_pipeline", "dual_site_release", *CI_DAGS)))
    kind = draw(st.sampled_from(("ref", "service", "missing", "null", "not_object")))
    if kind == "not_object":
        not_object = json_values.filter(lambda value: not isinstance(value, dict | None))
        return dag_id, draw(not_object), None
    ref_field = "image" if dag_id == "dual_site_release" else "git_ref"
    if kind == "null":
        return dag_id, None, "service"
    if kind == "missing":
        return dag_id, {"service": draw(st.sampled_from(SERVICES))}, ref_field
    conf: dict[str, Any] = {
        "service": draw(st.sampled_from(SERVICES)),
        ref_field: draw(st.sampled_from(GOOD_REFS[ref_field])),
    }
    if draw(st.booleans()):
        conf[draw(hostile_strings().filter(lambda k: k not in conf))] = draw(json_values)
    field = ref_field if kind == "ref" else "service"
    conf[field] = draw(BAD_VALUES[field])
    return dag_id, conf, field


@pytest.mark.timeout(300)
def test_bad_confs_are_refused_without_a_run(server: ApiServer) -> None:
    seen: list[str] = []
    baseline = dag_runs()
    headers = server.auth("admin")

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(bad_requests())
    def check(request: tuple[str, Any, str | None]) -> None:
        dag_id, conf, field = request
        if field == "git_ref":
            assert "git_ref" not in conf or not is_valid_git_ref(conf["git_ref"]), conf
        if field == "image":
            assert conf is None or not is_valid_image(conf.get("image")), conf
        seen.append(dag_id)
        answer = server.client.post(
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "conf": conf},
            headers=headers,
        )
        assert answer.status_code < 500, answer.text
        if field is None:
            assert answer.status_code == 422, answer.text
            assert any(problem["loc"][-1] == "conf" for problem in answer.json()["detail"])
        else:
            assert answer.status_code == 400, answer.text
            assert f"Invalid input for param {field}:" in answer.json()["detail"]
        assert dag_runs() == baseline, f"a run was started for {conf!r}"

    check()
    assert len(seen) >= EXAMPLES


@settings(max_examples=1000, deadline=None)
@given(st.one_of(hostile_strings(), st.text(max_size=60)))
def test_every_ref_the_params_accept_is_inert_in_a_command_line(text: str) -> None:
    """Whatever passes the git_ref rule carries no shell, option or path trick into a pod."""
    if not REF_RULE.is_valid(text):
        return
    assert text and not text.startswith("-")
    assert set(text) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-")
    assert ".." not in text and "//" not in text and not text.endswith((".lock", "/", "."))
