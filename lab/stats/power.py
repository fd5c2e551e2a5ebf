"""How large a difference an experiment can detect, and how many cases a difference needs.

Power is computed for normal per-case differences with a given standard deviation. Up to
:data:`SIMULATED_MAX_N` cases it is the power of the exact sign-flip test the report
uses, by a seeded simulation over every flip: at small n that test's p-values are coarse
(with ``n`` cases never below ``2 / 2**n``, :func:`~lab.stats.paired.smallest_p`), so
its power is well below the t-test's (6 cases, difference 1.5 sd: 67% against 86%), and
no difference at all is detectable while ``2 / 2**n`` exceeds alpha (n <= 5 at alpha
0.05). Beyond, it is the power of the two-sided paired t-test (scipy's noncentral t).
``python -m bench --only small_n`` checks planned power against simulated experiments.
"""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np
from scipy import optimize as _opt
from scipy import stats as _sp

from promptlab.lab.stats.paired import smallest_p

POWER = 0.8
MAX_CASES = 1_000_000
SIMULATED_MAX_N = 10
"""Up to this many cases, power is that of the exact sign-flip test, simulated."""
SIMULATED_RUNS = 2000


def min_cases(alpha: float) -> int:
    """The fewest cases with which the exact sign-flip test can reach ``p < alpha``."""
    n = 1
    while smallest_p(n) >= alpha:
        n += 1
    return n


@cache
def _simulation(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded standard normal differences, flipped every way, computed once per n.

    The same draws serve every difference and sd (power is then monotone in the
    difference, and a plan is reproducible): with ``d = difference + sd * z`` the flipped
    sums are ``difference * flips.sum() + sd * (z @ flips)``.
    """
    flips = np.array(list(itertools.product((1.0, -1.0), repeat=n))).T  # (n, 2**n)
    z = np.random.default_rng(n).standard_normal((SIMULATED_RUNS, n))
    return z.sum(axis=1), flips.sum(axis=0), z @ flips


def _sign_flip_power(difference: float, sd: float, n: int, alpha: float) -> float:
    z_sum, flip_sum, z_flipped = _simulation(n)
    observed = np.abs(difference * n + sd * z_sum)[:, None]
    flipped = np.abs(difference * flip_sum[None, :] + sd * z_flipped)
    p = (flipped >= observed - 1e-9).mean(axis=1)
    return float((p < alpha).mean())


def power(difference: float, sd: float, n: int, alpha: float) -> float:
    """Power of the report's test at two-sided level ``alpha``: ``n`` cases, normal
    differences with mean ``difference`` and standard deviation ``sd``."""
    if n < 2 or n < min_cases(alpha):
        return 0.0
    if sd <= 0:
        return 1.0 if difference != 0 else 0.0
    if n <= SIMULATED_MAX_N:
        return _sign_flip_power(difference, sd, n, alpha)
    df = n - 1
    crit = float(_sp.t.ppf(1 - alpha / 2, df))
    nc = abs(difference) * math.sqrt(n) / sd
    result = float(_sp.nct.sf(crit, df, nc) + _sp.nct.cdf(-crit, df, nc))
    if not math.isfinite(result):
        # scipy's noncentral t gives NaN far in its tail (a tiny sd makes nc huge):
        # the normal approximation is then exact to many digits.
        result = float(_sp.norm.sf(crit - nc) + _sp.norm.cdf(-crit - nc))
    return min(1.0, max(0.0, result))


def detectable_difference(sd: float, n: int, alpha: float, target: float = POWER) -> float | None:
    """The smallest mean difference detected with probability ``target``.

    None when ``n`` cases cannot reach ``alpha`` at all (see the module docstring) or
    ``sd`` is not positive (no spread observed: nothing to scale by).
    """
    if n < max(2, min_cases(alpha)) or not sd > 0:
        return None
    high = sd
    while power(high, sd, n, alpha) < target:
        high *= 2
    return float(_opt.brentq(lambda d: power(d, sd, n, alpha) - target, 0.0, high, xtol=1e-5))


def cases_needed(difference: float, sd: float, alpha: float, target: float = POWER) -> int:
    """The fewest cases that detect ``difference`` with probability ``target``.

    Never fewer than :func:`min_cases`; raises ValueError for a difference that is not
    positive or that would need more than :data:`MAX_CASES` cases.
    """
    if not difference > 0:
        raise ValueError("the difference must be positive")
    low = max(2, min_cases(alpha))
    while low <= SIMULATED_MAX_N:  # the exact test's power is not smooth in n: walk
        if power(difference, sd, low, alpha) >= target:
            return low
        low += 1
    if power(difference, sd, low, alpha) >= target:
        return low
    high = low * 2
    while power(difference, sd, high, alpha) < target:
        high *= 2
        if high > MAX_CASES:
            raise ValueError(f"more than {MAX_CASES:,} cases")
    while high - low > 1:  # power grows with n: bisect to the first n that reaches target
        mid = (low + high) // 2
        if power(difference, sd, mid, alpha) >= target:
            high = mid
        else:
            low = mid
    return high
