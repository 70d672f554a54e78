"""Fuzz the REST trigger endpoint's conf: every bad input is a 4xx and starts no run.

At least 1,000 generated bad confs go to ``POST /api/v2/dags/{dag_id}/dagRuns`` for the
pipeline DAGs. Each one has a declared param with a bad value, lacks a required param, or is
not an object at all; junk extra keys ride along. No answer may be a 5xx and no DAG run may
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
    bad_services,
    hostile_strings,
    is_valid_git_ref,
    json_values,
)

EXAMPLES = 1000
REF_RULE = jsonschema.Draft202012Validator(
    {"type": "string", "pattern": GIT_REF_PATTERN, "minLength": 1, "maxLength": 200}
)
CI_DAGS = ("ci_build", "ci_test", "quality_scan")


@st.composite
def bad_requests(draw: st.DrawFn) -> tuple[str, Any, str | None]:
    """(dag_id, conf, the param the refusal must name; None for a conf that is not an object).

    A null conf means "no conf": the delivery pipeline then lacks its required service.
    """
    dag_id = draw(st.sampled_from(("delivery_pipeline", *CI_DAGS)))
    kind = draw(st.sampled_from(("git_ref", "service", "missing_service", "null", "not_object")))
    if kind == "null":
        return "delivery_pipeline", None, "service"
    if kind == "not_object":
        not_object = json_values.filter(lambda value: not isinstance(value, dict | None))
        return dag_id, draw(not_object), None
    conf: dict[str, Any] = {
        "service": draw(st.sampled_from(SERVICES)),
        "git_ref": draw(st.sampled_from(("main", "release/1.4", "0" * 40))),
    }
    if draw(st.booleans()):
        conf[draw(hostile_strings().filter(lambda k: k not in conf))] = draw(json_values)
    if kind == "missing_service":
        del conf["service"]
        return "delivery_pipeline", conf, "service"
    conf[kind] = draw(bad_git_refs if kind == "git_ref" else bad_services)
    return dag_id, conf, kind


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
            assert not is_valid_git_ref(conf["git_ref"]), conf
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
