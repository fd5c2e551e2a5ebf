"""Always-valid sequential test of a difference of means: the normal-mixture mSPRT.

Why: the learner looks at the data after every event. A fixed-n test (t-test, z-test)
checked that often rejects a true null far more often than its nominal level (see
``bench/simulation.py``: a repeated t-test promotes an A/A challenger in roughly half of
the runs). The mixture sequential probability ratio test (Robbins, 1970; Johari, Koomen,
Pekelis & Walsh, "Always valid inference: continuous monitoring of A/B tests",
Operations Research 2022) gives a p-value that is valid *at any stopping time*:
``P(exists n: p_n <= alpha | H0) <= alpha``.

The statistic
-------------
Arm ``a`` is the control (champion), ``b`` the treatment (challenger). With sample
means ``m_a, m_b``, plug-in variances ``v_a, v_b`` (unbiased sample variances, floored
at :data:`MIN_VARIANCE`) and sizes ``n_a, n_b``::

    lift  = m_b - m_a                       (estimate of theta = mu_b - mu_a)
    s2    = v_a / n_a + v_b / n_b           (its variance)

Mixing the likelihood ratio of ``lift ~ N(theta, s2)`` against ``N(theta0, s2)`` over
``theta ~ N(theta0, tau2)`` gives::

    Lambda_n = sqrt(s2 / (s2 + tau2)) * exp( tau2 (lift - theta0)^2 / (2 s2 (s2 + tau2)) )

For equal allocation (``n_a = n_b = n``, ``V = v_a + v_b``) this is exactly Johari et
al.'s ``sqrt(V / (V + n tau2)) exp(n^2 tau2 (lift - theta0)^2 / (2 V (V + n tau2)))``.
Under H0 it is a non-negative martingale with mean 1, so by Ville's inequality

    p_n = min(1, p_{n-1}, 1 / Lambda_n)             (always-valid p-value)

and the always-valid confidence sequence for the lift is ``{theta0: Lambda_n(theta0) < 1/alpha}``::

    lift +/- sqrt( s2 (s2 + tau2) / tau2 * (2 log(1/alpha) + log((s2 + tau2) / s2)) )

Approximations, stated honestly: the normal likelihood (CLT; rewards are bounded, and
the policy tests only after ``min_samples`` and at least :data:`MIN_SEQUENTIAL_N` per
arm), the plug-in variance, and unequal, adaptively chosen sample sizes (the champion
gets most of the traffic, Thompson sampling decides the rest). The martingale argument
is exact only for equal allocation with known variance, so the level under the
sidecar's allocation is *measured* by ``bench/simulation.py`` (A/A, a check after every
event) rather than assumed.

Choice of the mixing variance ``tau2``
--------------------------------------
The boundary ``Lambda >= 1/alpha`` in z units (``z = lift / sqrt(s2)``, ``r = tau2 / s2``) is

    z^2 >= (1 + 1/r) (2 log(1/alpha) + log(1 + r)),

smallest (z ~= 3.04 at alpha = 0.05) for ``r`` between 5 and 10, and it grows only
slowly away from there (z ~= 3.34 at r ~= 1.7 or r ~= 170). A lift ``delta`` is typically
detected when ``s ~= delta / 4``, i.e. ``r ~= 16 tau2 / delta^2``. We expect lifts of
0.01 to 0.1 on a [0, 1] reward; ``tau = sqrt(0.01 * 0.1) ~= 0.032`` (``tau2 = 1e-3``), the
geometric middle, puts both ends at the same small penalty (boundary z ~= 3.3 instead of
3.04) and the middle (lift ~0.03-0.05) near the optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from promptlab.events.models import Interval

DEFAULT_TAU2 = 1e-3
"""Variance of the normal mixing distribution over the lift (tau ~= 0.032; see module doc)."""

MIN_VARIANCE = 1e-3
"""Floor of each arm's plug-in variance per observation (reward sd >= 0.032).

Early on an arm can show all 1s (sample variance 0), which would make ``Lambda``
explode; a real [0, 1] reward with a mean away from 0 and 1 has a variance far above
this floor (Bernoulli 0.99: 0.0099), so the floor costs no power on realistic data."""

MIN_SEQUENTIAL_N = 30
"""Fewest observations per arm before the normal approximation is trusted at all."""


class Moments(Protocol):
    """Anything with a size, a mean and an unbiased sample variance
    (:class:`learner.stats.beta.ArmSummary` is one)."""

    @property
    def n(self) -> int: ...

    @property
    def mean(self) -> float: ...

    @property
    def variance(self) -> float: ...


def log_lambda(
    lift: float | np.ndarray,
    s2: float | np.ndarray,
    tau2: float = DEFAULT_TAU2,
    theta0: float = 0.0,
) -> float | np.ndarray:
    """``log Lambda = 0.5 log(s2 / (s2 + tau2)) + tau2 (lift - theta0)^2 / (2 s2 (s2 + tau2))``.

    Vectorised over ``lift`` and ``s2`` (the simulation screens whole blocks of events).
    """
    lift_arr = np.asarray(lift, dtype=float)
    s2_arr = np.asarray(s2, dtype=float)
    total = s2_arr + tau2
    out = 0.5 * np.log(s2_arr / total) + tau2 * (lift_arr - theta0) ** 2 / (2.0 * s2_arr * total)
    return float(out) if out.ndim == 0 else out


def confidence_radius(s2: float, alpha: float, tau2: float = DEFAULT_TAU2) -> float:
    """Half-width of the always-valid (1 - alpha) confidence sequence for the lift."""
    return math.sqrt(
        s2 * (s2 + tau2) / tau2 * (2.0 * math.log(1.0 / alpha) + math.log((s2 + tau2) / s2))
    )


def plugin_variance(arm: Moments) -> float:
    """The arm's per-observation variance estimate: sample variance, floored."""
    return max(float(arm.variance), MIN_VARIANCE)


@dataclass(frozen=True, slots=True)
class MsprtResult:
    """One evaluation of the mSPRT of ``treatment - control``."""

    lift: float
    """``m_treatment - m_control``."""
    s2: float
    """Estimated variance of ``lift``."""
    tau2: float
    log_lambda: float
    """Log of the mixture likelihood ratio against ``theta0``."""
    p_value: float
    """Always-valid p-value: ``min(1, previous_p, 1 / Lambda)``."""

    def rejects(self, alpha: float) -> bool:
        """True when H0 is rejected at level ``alpha`` (``p_value <= alpha``)."""
        return self.p_value <= alpha

    def confidence_sequence(self, alpha: float = 0.05) -> Interval:
        """Always-valid (1 - alpha) interval for the lift at this look."""
        if not math.isfinite(self.s2):
            return Interval(low=-1.0, high=1.0)
        r = confidence_radius(self.s2, alpha, self.tau2)
        return Interval(low=self.lift - r, high=self.lift + r)


def msprt(
    treatment: Moments,
    control: Moments,
    *,
    tau2: float = DEFAULT_TAU2,
    theta0: float = 0.0,
    previous_p: float = 1.0,
) -> MsprtResult:
    """The normal-mixture mSPRT of ``H0: mu_treatment - mu_control = theta0``.

    ``previous_p`` is the p-value of the previous look at the same comparison; passing it
    makes the result the running minimum (the always-valid p-value). Rejecting whenever
    the *current* ``1 / Lambda`` is <= alpha (``previous_p = 1``) is also valid and simply a
    little more conservative; the policy does that so that it needs no state.

    With fewer than :data:`MIN_SEQUENTIAL_N` observations in an arm there is no evidence
    (``p = previous_p``).
    """
    if tau2 <= 0:
        raise ValueError(f"tau2 must be > 0, got {tau2}")
    if not 0.0 < previous_p <= 1.0:
        raise ValueError(f"previous_p must be in (0, 1], got {previous_p}")
    if treatment.n < MIN_SEQUENTIAL_N or control.n < MIN_SEQUENTIAL_N:
        lift = treatment.mean - control.mean if treatment.n and control.n else 0.0
        return MsprtResult(lift=lift, s2=math.inf, tau2=tau2, log_lambda=0.0, p_value=previous_p)
    lift = float(treatment.mean - control.mean)
    s2 = plugin_variance(treatment) / treatment.n + plugin_variance(control) / control.n
    ll = float(log_lambda(lift, s2, tau2, theta0))
    p_now = 1.0 if ll <= 0 else math.exp(-ll)
    return MsprtResult(
        lift=lift, s2=s2, tau2=tau2, log_lambda=ll, p_value=min(1.0, previous_p, p_now)
    )


def boundary_z(s2: float, alpha: float, tau2: float = DEFAULT_TAU2) -> float:
    """The |lift| / sqrt(s2) the test needs to reject at ``alpha`` (for explaining results)."""
    r = tau2 / s2
    return math.sqrt((1.0 + 1.0 / r) * (2.0 * math.log(1.0 / alpha) + math.log1p(r)))
