"""Error-rate arithmetic and judgement (pure functions)."""

from __future__ import annotations

import math

import pytest

from operators.verify.error_rate import (
    WindowCounts,
    binomial_tail,
    judge_error_rate,
    window_counts,
)


def _counts(ok: int, errors: int, client: int = 0) -> dict[str, int]:
    return {"1xx": 0, "2xx": ok, "3xx": 0, "4xx": client, "5xx": errors}


def test_window_counts_are_differences_and_survive_a_counter_reset() -> None:
    before = {"site-a": _counts(100, 1, 2), "site-b": _counts(500, 10)}
    after = {"site-a": _counts(150, 3, 4), "site-b": _counts(20, 1)}
    window = window_counts(before, after)
    assert window["site-a"] == WindowCounts(total=54, errors=2)
    assert window["site-b"] == WindowCounts(total=21, errors=1)
    assert window_counts({}, {"site-c": _counts(3, 1)})["site-c"].rate == 0.25


def test_binomial_tail_matches_known_values() -> None:
    assert binomial_tail(10, 0, 0.3) == 1.0
    assert binomial_tail(10, 11, 0.3) == 0.0
    assert math.isclose(binomial_tail(5, 1, 0.02), 1 - 0.98**5, rel_tol=1e-9)
    assert math.isclose(binomial_tail(4, 4, 0.5), 1 / 16, rel_tol=1e-9)
    assert binomial_tail(100_000, 3_000, 0.02) < 1e-50
    assert binomial_tail(3, 1, 0.0) == 0.0


def test_a_site_failing_30_percent_is_caught_even_with_few_requests() -> None:
    window = {
        "site-b": WindowCounts(total=12, errors=4),
        "site-a": WindowCounts(total=228, errors=0),
    }
    verdict = judge_error_rate(window, "site-b", max_error_rate=0.02)
    assert not verdict.ok and verdict.conclusive
    assert verdict.threshold == 0.02 and verdict.p_value < 0.01
    assert "too many errors" in verdict.reason
    assert judge_error_rate(window, "site-a", max_error_rate=0.02).ok


def test_one_stray_error_in_a_small_window_is_not_a_failure() -> None:
    window = {
        "site-b": WindowCounts(total=10, errors=1),
        "site-a": WindowCounts(total=190, errors=0),
    }
    verdict = judge_error_rate(window, "site-b", max_error_rate=0.02)
    assert verdict.ok and verdict.rate == 0.1
    assert "within chance" in verdict.reason
    strict = judge_error_rate(window, "site-b", max_error_rate=0.02, alpha=1.0)
    assert not strict.ok


def test_the_other_site_raises_the_bar_by_the_factor() -> None:
    window = {
        "site-b": WindowCounts(total=1000, errors=50),
        "site-a": WindowCounts(total=1000, errors=40),
    }
    verdict = judge_error_rate(window, "site-b", max_error_rate=0.01, factor=2.0)
    assert verdict.ok and verdict.threshold == pytest.approx(0.08)
    assert verdict.other_site == "site-a" and verdict.other_rate == pytest.approx(0.04)
    worse = {
        "site-b": WindowCounts(total=1000, errors=120),
        "site-a": WindowCounts(total=1000, errors=40),
    }
    assert not judge_error_rate(worse, "site-b", max_error_rate=0.01, factor=2.0).ok


def test_no_traffic_is_inconclusive_and_bad_input_is_refused() -> None:
    window = {"site-b": WindowCounts(total=0, errors=0), "site-a": WindowCounts(total=10, errors=0)}
    verdict = judge_error_rate(window, "site-b", max_error_rate=0.02)
    assert verdict.ok and not verdict.conclusive
    with pytest.raises(KeyError, match="site-c"):
        judge_error_rate(window, "site-c", max_error_rate=0.02)
    with pytest.raises(ValueError):
        judge_error_rate(window, "site-b", max_error_rate=2.0)
    assert judge_error_rate(window, "site-b", max_error_rate=0.02).to_dict()["site"] == "site-b"
