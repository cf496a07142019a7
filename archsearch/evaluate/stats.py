"""Statistics over seeds: mean, standard deviation, a t confidence interval, a paired t-test."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """Mean ± sample std of n values, with a two-sided t confidence interval (None when n < 2)."""

    n: int
    mean: float
    std: float
    ci_low: float | None
    ci_high: float | None


def spread(values: Sequence[float], confidence: float = 0.95,
           bounds: tuple[float, float] = (-math.inf, math.inf)) -> Spread:
    """Mean, sample standard deviation (ddof=1) and the t interval mean ± t·std/√n, clipped to
    `bounds` (an accuracy's interval stays within [0, 1])."""
    if not values:
        raise ValueError(f"spread needs at least one value, but got {values=}")
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Spread(n, mean, 0.0, None, None)
    from scipy import stats

    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Spread(n, mean, std, max(bounds[0], mean - half), min(bounds[1], mean + half))


@dataclass(frozen=True)
class PairedTest:
    """Paired t-test of a against b over the same seeds (H1: mean(a - b) > 0)."""

    n: int
    mean_diff: float
    p_value: float | None  # None: fewer than 2 pairs, or every difference identical
    alpha: float

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < self.alpha

    def describe(self) -> str:
        if self.p_value is None:
            why = "one seed" if self.n < 2 else "identical differences on every seed"
            return f"difference {100 * self.mean_diff:+.2f} pp; no test possible ({why})"
        verdict = "significant" if self.significant else "not significant"
        return (f"difference {100 * self.mean_diff:+.2f} pp over {self.n} paired seeds, one-sided paired t-test "
                f"p = {self.p_value:.3g}: {verdict} at {self.alpha:g}")


def paired_test(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> PairedTest:
    """One-sided paired t-test that `a` beats `b` (values paired by seed)."""
    if len(a) != len(b):
        raise ValueError(f"paired_test needs equal lengths, but got {len(a)=} and {len(b)=}")
    diffs = [x - y for x, y in zip(a, b)]
    n = len(diffs)
    mean = sum(diffs) / n if n else 0.0
    if n < 2 or max(diffs) - min(diffs) < 1e-12:
        return PairedTest(n, mean, None, alpha)
    from scipy import stats

    p = float(stats.ttest_rel(a, b, alternative="greater").pvalue)
    return PairedTest(n, mean, p, alpha)
