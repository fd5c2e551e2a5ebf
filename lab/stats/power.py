"""How large a difference an experiment can detect, and how many cases a difference needs.

Power is that of the two-sided paired t-test at the given alpha (scipy's noncentral t),
from the standard deviation of the per-case differences. At small n the report uses the
sign-flip test instead, whose power is close to the t-test's for the same data, with one
hard limit the t-test does not have: with ``n`` cases its p-value is never below
``2 / 2**n`` (:func:`~lab.stats.paired.smallest_p`), so no difference at all is
detectable while that exceeds alpha (n <= 5 at alpha 0.05). Both functions respect it.
``python -m bench --only small_n`` checks the planned power by simulation.
"""

from __future__ import annotations

import math

from scipy import optimize as _opt
from scipy import stats as _sp

from promptlab.lab.stats.paired import smallest_p

POWER = 0.8
MAX_CASES = 1_000_000


def min_cases(alpha: float) -> int:
    """The fewest cases with which the exact sign-flip test can reach ``p < alpha``."""
    n = 1
    while smallest_p(n) >= alpha:
        n += 1
    return n


def power(difference: float, sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t-test: ``n`` cases, true mean difference, its sd."""
    if n < 2:
        return 0.0
    if sd <= 0:
        return 1.0 if difference != 0 and n >= min_cases(alpha) else 0.0
    df = n - 1
    crit = float(_sp.t.ppf(1 - alpha / 2, df))
    nc = abs(difference) * math.sqrt(n) / sd
    return float(_sp.nct.sf(crit, df, nc) + _sp.nct.cdf(-crit, df, nc))


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
    return float(_opt.brentq(lambda d: power(d, sd, n, alpha) - target, 0.0, high, xtol=1e-9))


def cases_needed(difference: float, sd: float, alpha: float, target: float = POWER) -> int:
    """The fewest cases that detect ``difference`` with probability ``target``.

    Never fewer than :func:`min_cases`; raises ValueError for a difference that is not
    positive or that would need more than :data:`MAX_CASES` cases.
    """
    if not difference > 0:
        raise ValueError("the difference must be positive")
    low = max(2, min_cases(alpha))
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
