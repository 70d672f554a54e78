"""Error rate of each site over a window, judged against the catalog and the other site.

Inputs are two snapshots of cumulative answer counts per site and status class (as a gateway
driver's ``answer_counts`` returns them), taken at the start and the end of the window. A site's
error rate is its 5xx answers over all its answers in the window.

A site fails when its rate is above ``threshold = max(max_error_rate, other_rate * factor)``
and that excess is unlikely to be chance: the probability of seeing at least that many errors
among that many answers at the threshold rate (binomial tail) is below ``alpha``. With few
answers one stray error does not fail a release; a steady share of errors does. ``alpha=1``
gives the plain comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

ERROR_CLASS = "5xx"


@dataclass(frozen=True)
class WindowCounts:
    """Answers of one site within a window."""

    total: int
    errors: int

    @property
    def rate(self) -> float:
        return self.errors / self.total if self.total else 0.0


@dataclass(frozen=True)
class ErrorRateVerdict:
    """The judgement of one site's error rate over one window."""

    site: str
    ok: bool
    conclusive: bool
    total: int
    errors: int
    rate: float
    threshold: float
    p_value: float
    other_site: str | None
    other_total: int
    other_rate: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def window_counts(
    before: Mapping[str, Mapping[str, int]], after: Mapping[str, Mapping[str, int]]
) -> dict[str, WindowCounts]:
    """Answers per site between two snapshots.

    A counter that went down means the gateway restarted within the window; the later snapshot
    is then taken as the whole window for that class.
    """
    result: dict[str, WindowCounts] = {}
    for site, later in after.items():
        earlier = before.get(site, {})
        total = 0
        errors = 0
        for klass, count in later.items():
            delta = count - earlier.get(klass, 0)
            if delta < 0:
                delta = count
            total += delta
            if klass == ERROR_CLASS:
                errors += delta
        result[site] = WindowCounts(total=total, errors=errors)
    return result


def binomial_tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p = math.log(p)
    log_q = math.log1p(-p)
    total = 0.0
    for i in range(k, n + 1):
        log_term = (
            math.lgamma(n + 1)
            - math.lgamma(i + 1)
            - math.lgamma(n - i + 1)
            + i * log_p
            + (n - i) * log_q
        )
        term = math.exp(log_term)
        total += term
        if i > n * p and term < total * 1e-12:
            break
    return min(1.0, total)


def judge_error_rate(
    window: Mapping[str, WindowCounts],
    site: str,
    *,
    max_error_rate: float,
    factor: float = 2.0,
    alpha: float = 0.01,
) -> ErrorRateVerdict:
    """Judge ``site`` in ``window`` against ``max_error_rate`` and the other site(s).

    :param window: answers per site in the window (see :func:`window_counts`).
    :param site: the site to judge.
    :param max_error_rate: the catalog's ``release.max_error_rate``.
    :param factor: how many times the other site's rate the judged site may reach.
    :param alpha: how unlikely by chance an excess must be to fail the site.
    """
    if site not in window:
        raise KeyError(f"site {site!r} has no counts; known: {sorted(window)}")
    if not 0.0 <= max_error_rate <= 1.0 or factor < 0 or not 0.0 < alpha <= 1.0:
        raise ValueError("max_error_rate must be in [0, 1], factor >= 0 and alpha in (0, 1]")
    mine = window[site]
    others = {name: counts for name, counts in window.items() if name != site}
    other_total = sum(c.total for c in others.values())
    other_errors = sum(c.errors for c in others.values())
    other_rate = other_errors / other_total if other_total else 0.0
    other_site = ",".join(sorted(others)) or None
    threshold = max(max_error_rate, other_rate * factor)
    if mine.total == 0:
        p_value = 1.0
        failed = False
        reason = f"site {site} answered no requests in the window; nothing to judge"
    else:
        above = mine.rate > threshold
        p_value = binomial_tail(mine.total, mine.errors, threshold) if above else 1.0
        failed = above and p_value < alpha
        described = (
            f"site {site}: {mine.errors}/{mine.total} errors ({mine.rate:.2%}) vs threshold {threshold:.2%} "
            f"(max_error_rate {max_error_rate:.2%}, other {other_rate:.2%} x {factor:g}), p={p_value:.3g}"
        )
        if failed:
            reason = described + f" < alpha {alpha:g}: too many errors"
        elif above:
            reason = described + f" >= alpha {alpha:g}: above threshold but within chance"
        else:
            reason = described + ": within threshold"
    return ErrorRateVerdict(
        site=site,
        ok=not failed,
        conclusive=mine.total > 0,
        total=mine.total,
        errors=mine.errors,
        rate=mine.rate,
        threshold=threshold,
        p_value=p_value,
        other_site=other_site,
        other_total=other_total,
        other_rate=other_rate,
        reason=reason,
    )
