"""Statistics of an offline report: intervals, percentiles, paired tests, Holm.

Pure functions of numbers (no I/O, no randomness), so a report is a function of its
trials. Significance comes from the paired tests below, never from whether two
confidence intervals overlap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sp


@dataclass(frozen=True, slots=True)
class MeanInterval:
    """A mean with a two-sided Student-t confidence interval (None for n < 2)."""

    mean: float
    low: float | None
    high: float | None
    n: int


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> MeanInterval | None:
    """Mean of ``values`` and its t interval; None when there are no values."""
    n = len(values)
    if n == 0:
        return None
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    if n < 2:
        return MeanInterval(mean, None, None, n)
    sem = float(arr.std(ddof=1)) / math.sqrt(n)
    half = float(_sp.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    return MeanInterval(mean, mean - half, mean + half, n)


def sample_std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (ddof = 1); None below two values."""
    return float(np.std(values, ddof=1)) if len(values) >= 2 else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100, linear interpolation); None when empty."""
    return float(np.percentile(values, q)) if len(values) else None


@dataclass(frozen=True, slots=True)
class PairedResult:
    """Paired tests of ``a`` against ``b`` on the cases both have."""

    n: int
    """Number of paired cases."""
    mean_diff: float
    """Mean of ``a - b`` over the paired cases."""
    t_p: float | None
    """Two-sided p-value of the paired t-test; None below two pairs."""
    wilcoxon_p: float | None
    """Two-sided p-value of the Wilcoxon signed-rank test; None below two pairs."""


def paired(a: Mapping[str, float], b: Mapping[str, float]) -> PairedResult:
    """Compare per-case means ``a`` and ``b`` (case id -> mean) on their common cases.

    When every difference is equal the t statistic is undefined: the p-value is 1 if
    the differences are all zero and 0 otherwise (no variation, a sure difference).
    When every difference is zero the Wilcoxon test has nothing to rank: p = 1.
    """
    cases = sorted(set(a) & set(b))
    diffs = np.array([a[c] - b[c] for c in cases], dtype=float)
    n = len(cases)
    mean_diff = float(diffs.mean()) if n else 0.0
    if n < 2:
        return PairedResult(n, mean_diff, None, None)
    if np.allclose(diffs, diffs[0], rtol=0.0, atol=1e-12):
        t_p = 1.0 if abs(diffs[0]) <= 1e-12 else 0.0
    else:
        t_p = float(_sp.ttest_rel([a[c] for c in cases], [b[c] for c in cases]).pvalue)
    if np.all(np.abs(diffs) <= 1e-12):
        w_p = 1.0
    else:
        w_p = float(_sp.wilcoxon(diffs, zero_method="wilcox").pvalue)
    return PairedResult(n, mean_diff, t_p, w_p)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values, in the input order (None stays None).

    Sorted ascending, the i-th (0-based) of m is multiplied by ``m - i``; a running
    maximum keeps them monotone; capped at 1.
    """
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(indexed)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
