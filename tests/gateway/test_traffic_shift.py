"""TrafficShiftOperator: validation of weights and the shift against the stand-in gateway."""

from __future__ import annotations

import logging

import pytest

from operators.gateway.traffic import (
    TrafficShiftOperator,
    WeightsError,
    check_weights,
    format_weights,
    parse_weights,
)
from tests.gateway.fixtures import SERVICE

SITES = ["site-a", "site-b"]


def test_check_weights_accepts_a_split_of_100_in_site_order() -> None:
    assert check_weights({"site-b": 75, "site-a": 25}, SITES) == {"site-a": 25, "site-b": 75}
    assert check_weights({"site-a": 0, "site-b": 100}, SITES) == {"site-a": 0, "site-b": 100}


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"site-a": 0, "site-b": 0}, "sum to 0"),
        ({"site-a": 50, "site-b": 60}, "sum to 110"),
        ({"site-a": 100}, "missing=\\['site-b'\\]"),
        ({"site-a": 50, "site-b": 50, "site-c": 0}, "unknown=\\['site-c'\\]"),
        ({"site-a": -10, "site-b": 110}, "from 0 to 100"),
    ],
)
def test_check_weights_refuses(weights: dict[str, int], message: str) -> None:
    with pytest.raises(WeightsError, match=message):
        check_weights(weights, SITES)


def test_parse_weights_takes_json_text_and_refuses_non_integers() -> None:
    assert parse_weights('{"site-a": 5, "site-b": 95}') == {"site-a": 5, "site-b": 95}
    with pytest.raises(WeightsError, match="not JSON"):
        parse_weights("site-a=5")
    with pytest.raises(WeightsError, match="whole number"):
        parse_weights({"site-a": 5.5, "site-b": 94.5})
    with pytest.raises(WeightsError, match="whole number"):
        parse_weights({"site-a": True, "site-b": 99})
    assert format_weights({"site-a": 5, "site-b": 95}) == "site-a=5,site-b=95"


def test_operator_refuses_bad_weights_when_built() -> None:
    with pytest.raises(WeightsError, match="sum to 90"):
        TrafficShiftOperator(task_id="shift", service=SERVICE, weights={"site-a": 40, "site-b": 50})


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_operator_shifts_and_logs_before_and_after(driver, gateway, caplog, capsys) -> None:  # type: ignore[no-untyped-def]
    operator = TrafficShiftOperator(
        task_id="drain_traffic", service=SERVICE, weights={"site-a": 100, "site-b": 0}
    )
    with caplog.at_level(logging.INFO):
        result = operator.execute(context={})
    assert result == {
        "service": SERVICE,
        "before": {"site-a": 50, "site-b": 50},
        "after": {"site-a": 100, "site-b": 0},
    }
    assert driver.get_weights(SERVICE) == {"site-a": 100, "site-b": 0}
    text = caplog.text + capsys.readouterr().out
    assert (
        "traffic shift start service=hello-api before=site-a=50,site-b=50 target=site-a=100,site-b=0"
        in text
    )
    assert (
        "traffic shift done service=hello-api before=site-a=50,site-b=50 after=site-a=100,site-b=0"
        in text
    )
    patches = [c for c in gateway.admin_requests() if c["method"] == "PATCH"]
    again = operator.execute(context={})
    assert again["before"] == again["after"] == {"site-a": 100, "site-b": 0}
    assert [c for c in gateway.admin_requests() if c["method"] == "PATCH"] == patches


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_operator_refuses_templated_weights_that_leave_no_site(driver, gateway) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.exceptions import AirflowFailException

    operator = TrafficShiftOperator(
        task_id="shift", service=SERVICE, weights='{"site-a": 0, "site-b": 0}'
    )
    before = len(gateway.admin_requests())
    with pytest.raises(AirflowFailException, match="sum to 0"):
        operator.execute(context={})
    unknown = TrafficShiftOperator(
        task_id="shift", service="nope", weights='{"site-a": 0, "site-b": 100}'
    )
    with pytest.raises(AirflowFailException, match="unknown service 'nope'"):
        unknown.execute(context={})
    assert len(gateway.admin_requests()) == before
    assert driver.get_weights(SERVICE) == {"site-a": 50, "site-b": 50}
