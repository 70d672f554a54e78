"""Weight plans: drain and re-admit steps never leave both sites at 0."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from operators.release.base import drain_plan, normal_weights, readmit_plan, shifted

SITES = ["site-a", "site-b"]


def test_drain_and_readmit_follow_the_catalog_steps():
    assert drain_plan(50, (5, 25, 50)) == [25, 5, 0]
    assert readmit_plan(50, (5, 25, 50)) == [5, 25, 50]
    assert readmit_plan(40, (5, 25, 50)) == [5, 25, 40]
    assert drain_plan(0, (5, 25, 50)) == [0]


def test_normal_weights_fall_back_to_an_even_split():
    assert normal_weights(SITES, {"site-a": 60, "site-b": 40}) == {"site-a": 60, "site-b": 40}
    assert normal_weights(SITES, {"site-a": 100, "site-b": 0}) == {"site-a": 50, "site-b": 50}
    assert normal_weights(SITES, None) == {"site-a": 50, "site-b": 50}


@given(
    st.integers(min_value=1, max_value=99),
    st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=5, unique=True),
)
def test_every_step_sums_to_100(normal, steps):
    steps = tuple(sorted(steps))
    for share in drain_plan(normal, steps) + readmit_plan(normal, steps):
        weights = shifted("site-b", share, SITES)
        assert sum(weights.values()) == 100
        assert max(weights.values()) > 0
    assert readmit_plan(normal, steps)[-1] == normal
    assert drain_plan(normal, steps)[-1] == 0
