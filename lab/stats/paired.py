"""Paired tests of two points on the cases both have, and Holm's correction.

Offline experiments usually have 5 to 30 cases, so the test is chosen for small n:

* ``sign-flip (exact)``: the permutation test of the mean paired difference under
  random sign flips (scipy's ``permutation_test``, ``permutation_type="samples"``), over
  all ``2**n`` flips up to :data:`EXACT_MAX_N` cases;
* ``sign-flip (Monte Carlo)``: the same test on :data:`MONTE_CARLO_RESAMPLES` seeded
  random flips beyond that;
* ``paired t``: scipy's ``ttest_rel``, where its assumptions hold: at least
  :data:`T_MIN_N` cases and differences that vary;
* ``wilcoxon``: scipy's signed-rank test, when an experiment asks for it (below
  :data:`T_MIN_N` cases only where its p-value is exact: its normal approximation is no
  small-sample test).

``test = "auto"`` (the default) takes the sign-flip test below :data:`T_MIN_N` cases or
when every difference is the same, the t-test otherwise. The t-test turns a constant
difference into p = 0 and reads 2 of 2 wins as certain; the exact test says what two
cases can say: p = 0.5. No finite sample yields p = 0: a sign-flip p-value is at least
``2 / 2**n`` (:func:`smallest_p`), and a t-test p-value that underflows is reported as
the smallest positive float.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as _sp

EXACT_MAX_N = 15
"""Up to this many cases the sign-flip test enumerates every flip (2**15 = 32,768).

scipy's ``permutation_test`` builds the flips of an exact paired test in Python: 0.06 s
at 12 cases, 0.23 s at 14, 1.2 s at 16 and about 24 s at 20 per comparison (measured
on this 2-core machine under load), and a report makes one comparison per pair of
combinations. Beyond 15 cases :data:`MONTE_CARLO_RESAMPLES` seeded random flips give a
valid p-value (the observed assignment counts among them) within about 0.004 of the
exact one near p = 0.05."""
MONTE_CARLO_RESAMPLES = 9999
T_MIN_N = 30
"""From this many cases (and varying differences) ``auto`` uses the paired t-test."""
TINY_P = float(np.finfo(float).tiny)
"""A t-test p-value below this (an underflow to 0) is reported as this."""
_ZERO = 1e-12

TestChoice = Literal["auto", "permutation", "t", "wilcoxon"]
"""What an experiment's ``test`` asks for (see the module docstring)."""
SIGN_FLIP_EXACT = "sign-flip (exact)"
SIGN_FLIP_MC = "sign-flip (Monte Carlo)"
PAIRED_T = "paired t"
WILCOXON = "wilcoxon"


@dataclass(frozen=True, slots=True)
class PairedResult:
    """Paired tests of ``a`` against ``b`` on the cases both have."""

    n: int
    """Number of paired cases."""
    mean_diff: float
    """Mean of ``a - b`` over the paired cases."""
    sd_diff: float | None
    """Sample standard deviation of the differences (ddof = 1); None below two pairs."""
    test: str | None
    """The test that gave ``p`` (None with no pair)."""
    p: float | None
    """Two-sided p-value of ``test``."""
    p_min: float | None
    """The smallest p-value ``test`` can give with ``n`` cases (None: no floor but 0)."""
    t_p: float | None
    """Paired t-test p-value; None below two pairs or when every difference is equal."""
    wilcoxon_p: float | None
    """Wilcoxon signed-rank p-value (1 when every difference is 0); None below two pairs.
    Exact up to 10 cases, or without ties or zeros; the normal approximation otherwise."""
    permutation_p: float | None
    """Sign-flip p-value when that test was run, else None."""


def smallest_p(n: int, *, exact: bool = True) -> float:
    """The smallest two-sided p-value of the sign-flip test with ``n`` cases.

    Exact: the observed flip and its mirror are 2 of the ``2**n`` flips. Monte Carlo:
    scipy counts the observed statistic among the resamples, ``2 / (R + 1)``.
    """
    if exact:
        return min(1.0, 2.0 ** (1 - n)) if n > 0 else 1.0
    return 2.0 / (MONTE_CARLO_RESAMPLES + 1)


def sign_flip(diffs: Sequence[float] | np.ndarray, *, seed: int = 0) -> tuple[float, bool]:
    """Two-sided sign-flip p-value of the mean of ``diffs`` and whether it was exact."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    exact = n <= EXACT_MAX_N
    if n < 2:  # one case: it and its flip are equally extreme (scipy wants two)
        return 1.0, True
    result = _sp.permutation_test(
        (d,),
        _mean,
        permutation_type="samples",
        vectorized=True,
        n_resamples=2**n if exact else MONTE_CARLO_RESAMPLES,
        batch=2**15,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return min(1.0, float(result.pvalue)), exact


def _mean(x: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(x, axis=axis)


WILCOXON_PERMUTATION_MAX_N = 10
"""With ties or zeros, scipy's exact (permutation) Wilcoxon up to this many cases."""


def _wilcoxon(diffs: np.ndarray) -> tuple[float, bool]:
    """scipy's signed-rank p-value and whether it is exact.

    Exact without ties or zeros (up to 50 differences); with them, scipy's permutation
    version up to :data:`WILCOXON_PERMUTATION_MAX_N` differences (it evaluates one
    statistic at a time: fine for 2**10 flips, seconds beyond) and the tie-corrected
    normal approximation past that.
    """
    n = len(diffs)
    magnitudes = np.abs(diffs)
    clean = bool(np.all(magnitudes > _ZERO)) and len(np.unique(magnitudes)) == n
    if clean and n <= 50:
        return float(_sp.wilcoxon(diffs, zero_method="wilcox", method="exact").pvalue), True
    if not clean and n <= WILCOXON_PERMUTATION_MAX_N:
        return float(_sp.wilcoxon(diffs, zero_method="wilcox").pvalue), True
    return float(_sp.wilcoxon(diffs, zero_method="wilcox", method="approx").pvalue), False


def paired(
    a: Mapping[str, float], b: Mapping[str, float], *, test: TestChoice = "auto", seed: int = 0
) -> PairedResult:
    """Compare per-case means ``a`` and ``b`` (case id -> mean) on their common cases.

    ``test`` picks the test that gives ``p`` (module docstring); the t-test and Wilcoxon
    p-values are reported beside it whenever they are defined.
    """
    cases = sorted(set(a) & set(b))
    diffs = np.array([a[c] - b[c] for c in cases], dtype=float)
    n = len(cases)
    if n == 0:
        return PairedResult(0, 0.0, None, None, None, None, None, None, None)
    mean_diff = float(diffs.mean())
    sd = float(diffs.std(ddof=1)) if n >= 2 else None
    constant = bool(np.allclose(diffs, diffs[0], rtol=0.0, atol=_ZERO))
    all_zero = bool(np.all(np.abs(diffs) <= _ZERO))
    t_p = None
    if n >= 2 and not constant:
        t_p = max(TINY_P, float(_sp.ttest_rel([a[c] for c in cases], [b[c] for c in cases]).pvalue))
    w_p, w_exact = None, False
    if n >= 2:
        w_p, w_exact = (1.0, True) if all_zero else _wilcoxon(diffs)

    chosen: str
    if test == "t" and t_p is not None:
        chosen, p, p_min = PAIRED_T, t_p, None
    elif test == "wilcoxon" and w_p is not None and not all_zero and (w_exact or n >= T_MIN_N):
        chosen, p, p_min = WILCOXON, w_p, None
    elif test == "auto" and t_p is not None and n >= T_MIN_N:
        chosen, p, p_min = PAIRED_T, t_p, None
    else:
        p, exact = (1.0, True) if all_zero else sign_flip(diffs, seed=seed)
        chosen = SIGN_FLIP_EXACT if exact else SIGN_FLIP_MC
        p_min = smallest_p(n, exact=exact)
    return PairedResult(
        n=n,
        mean_diff=mean_diff,
        sd_diff=sd,
        test=chosen,
        p=p,
        p_min=p_min,
        t_p=t_p,
        wilcoxon_p=w_p,
        permutation_p=p if chosen in (SIGN_FLIP_EXACT, SIGN_FLIP_MC) else None,
    )


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
