"""An allocation-aware, always-valid one-sided test of a lift: a betting e-process over
inverse-probability-weighted reward increments.

The increment
-------------
Arms ``c`` (challenger) and ``h`` (champion) are compared on the rewards of the *same
period* only. Every rewarded call ``k`` of the prompt, whichever arm served it, is one
step; with ``a_k`` the arm that served it, ``p_k`` the routing probability logged for it
(``RoutingInfo.probability``), ``y_k`` in [0, 1] its reward and ``b_k`` a baseline
computed from *earlier* rewards only (the prompt's running mean)::

    x_k = (y_k - b_k) / p_k    if a_k == c
        = -(y_k - b_k) / p_k   if a_k == h
        = 0                    otherwise

Given the past, ``E[x_k] = mu_c(k) - mu_h(k)``: the lift *at that moment*, whatever the
allocation was and however both arms drift together (the baseline cancels; it only
shrinks the variance, as in AIPW). A whole-history comparison has no such property:
a drifting baseline plus a late challenger made it promote 37% of A/A runs.

The test
--------
``H0: E[x_k | past] <= null`` for every ``k`` (``null`` is ``min_lift``). The wealth
``E_n = prod_k (1 + lambda_k (x_k - null))`` with a *predictable* bet ``lambda_k >= 0``
(computed from steps before ``k``) is a nonnegative supermartingale under H0, so by
Ville's inequality ``P(sup_n E_n >= 1/alpha) <= alpha``: checking after every reward is
safe, and ``E_n`` is an e-value at any stopping time (what online FDR control needs).
The bet is the growth-optimal plug-in ``mu / (sigma^2 + mu^2)`` of the shrunk running
mean and variance of ``x - null``, capped at ``cap_fraction / bound`` so a factor never
drops below ``1 - cap_fraction``; ``bound`` is ``1 / exploration_floor`` (the largest
``|x|`` when every live arm keeps at least the floor). Only one-sided: a loss never
counts as evidence of a gain, so the whole alpha is spent on the direction tested.

Everything here is pure arithmetic on floats in a fixed order: replaying the same
events gives bit-identical wealth. Functions accept numpy arrays (the last axis is
time), so the simulator (:mod:`bench.scenarios`) runs this very code over
thousands of runs at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from promptlab.prompts.config import PromotionConfig
from promptlab.prompts.routing import PROBATION_HOLDBACK

FloatArray = npt.NDArray[np.float64]

SHRINK_STEPS = 50.0
"""Pseudo-steps of zero mean the bet's mean estimate starts with (a cautious start)."""
PRIOR_VARIANCE = 1.0
"""Prior variance (one pseudo-step) of the bet's variance estimate."""
CAP_FRACTION = 0.5
"""A single step can lose at most this fraction of the wealth."""


@dataclass(frozen=True, slots=True)
class BetState:
    """A running test: its steps so far and the log of its wealth."""

    null: float = 0.0
    """The largest lift H0 allows (``min_lift``; for futility tests, ``-min_lift``)."""
    bound: float = 20.0
    """The largest ``|x|`` a step can have (``1 / exploration_floor``)."""
    n: int = 0
    sum_y: float = 0.0
    """Sum of ``x - null`` over the steps."""
    sum_y2: float = 0.0
    log_wealth: float = 0.0
    max_log_wealth: float = 0.0

    def __post_init__(self) -> None:
        if self.bound <= 0 or not np.isfinite(self.bound):
            raise ValueError("bound must be positive and finite")

    @property
    def mean(self) -> float | None:
        """The plain mean of the increments (an unbiased lift estimate), None before any."""
        return None if self.n == 0 else self.sum_y / self.n + self.null

    def step(self, x: float) -> BetState:
        """This test after one more step with increment ``x``."""
        state = [float(self.n), self.sum_y, self.sum_y2, self.log_wealth, self.max_log_wealth]
        advance(state, x, self.null, self.bound)
        return replace(
            self,
            n=self.n + 1,
            sum_y=state[1],
            sum_y2=state[2],
            log_wealth=state[3],
            max_log_wealth=state[4],
        )

    def steps(self, xs: FloatArray) -> BetState:
        """This test after the steps ``xs`` in order (same arithmetic as :meth:`step`)."""
        state = self
        for x in np.asarray(xs, dtype=float).tolist():
            state = state.step(x)
        return state


TEST_FIELDS = 5
"""A running test kept as a list: ``[n, sum_y, sum_y2, log_wealth, max_log_wealth]``."""


def advance(state: list[float], x: float, null: float, bound: float) -> None:
    """One step of a running test kept as ``[n, sum_y, sum_y2, log_wealth,
    max_log_wealth]``, in place, in plain float arithmetic: the learner's projection
    steps every running test at every rewarded call with it (the same bet as
    :func:`bet`, at a fraction of numpy's per-call cost)."""
    n, sum_y, sum_y2 = state[0], state[1], state[2]
    mu = sum_y / (n + SHRINK_STEPS)
    var = (sum_y2 + PRIOR_VARIANCE) / (n + 1.0)
    lam = mu / (var + mu * mu)
    cap = CAP_FRACTION / (bound + abs(null))
    lam = 0.0 if lam < 0.0 else (cap if lam > cap else lam)
    y = x - null
    log_w = state[3] + math.log(max(1.0 + lam * y, 1e-12))
    state[0] = n + 1.0
    state[1] = sum_y + y
    state[2] = sum_y2 + y * y
    state[3] = log_w
    if log_w > state[4]:
        state[4] = log_w


def bet(
    sum_y: FloatArray | float,
    sum_y2: FloatArray | float,
    n: FloatArray | float,
    null: FloatArray | float,
    bound: FloatArray | float,
) -> FloatArray:
    """The bet for the next step from the sums of ``y = x - null`` over the steps so far."""
    mu = np.asarray(sum_y, dtype=float) / (np.asarray(n, dtype=float) + SHRINK_STEPS)
    var = (np.asarray(sum_y2, dtype=float) + PRIOR_VARIANCE) / (np.asarray(n, dtype=float) + 1.0)
    lam = mu / (var + mu * mu)
    cap = CAP_FRACTION / (np.asarray(bound, dtype=float) + np.abs(np.asarray(null, dtype=float)))
    return np.clip(lam, 0.0, cap)


def wealth_path(
    x: FloatArray,
    mask: npt.NDArray[np.bool_],
    sum_y: FloatArray,
    sum_y2: FloatArray,
    n: FloatArray,
    log_wealth: FloatArray,
    null: float,
    bound: FloatArray | float,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """A block of steps for many tests at once: ``x`` is ``(tests, steps)``, ``mask`` says
    which entries are steps (False: padding); the rest is each test's state before.

    Returns ``(log_wealth_path, sum_y, sum_y2, n, log_wealth)``: the wealth after every
    step (padding repeats the previous value) and the states after the block. The bets
    use prefix sums, so the path equals calling :meth:`BetState.step` step by step (up
    to float summation order).
    """
    if x.shape[-1] == 0:  # no steps: nothing changes
        return np.zeros(x.shape), sum_y, sum_y2, n, log_wealth
    m = mask.astype(float)
    y = (x - null) * m
    cy = np.cumsum(y, axis=-1)
    cy2 = np.cumsum(y * y, axis=-1)
    cn = np.cumsum(m, axis=-1)
    prev_y = sum_y[..., None] + cy - y
    prev_y2 = sum_y2[..., None] + cy2 - y * y
    prev_n = n[..., None] + cn - m
    b = np.asarray(bound, dtype=float)
    lam = bet(prev_y, prev_y2, prev_n, null, b if b.ndim == x.ndim else b[..., None])
    logs = np.log(np.maximum(1.0 + lam * y, 1e-12)) * m
    path = log_wealth[..., None] + np.cumsum(logs, axis=-1)
    return path, sum_y + cy[..., -1], sum_y2 + cy2[..., -1], n + cn[..., -1], path[..., -1]


def step_bounds(baseline: FloatArray | float, floor: FloatArray | float) -> FloatArray:
    """The largest loss ``-x`` a step can have, known before the step: a served arm's
    ``(y - b) / p`` is at least ``-b / p`` (the challenger's side) and the champion's
    ``-(y - b) / p`` at least ``-(1 - b) / p``, with every live arm's ``p`` at least the
    ``floor``; the futility test's ``-x`` is bounded alike. Using the step's own
    baseline (about 0.5) instead of 1 lets the bet be twice as large at the same safety."""
    b = np.asarray(baseline, dtype=float)
    return np.maximum(b, 1.0 - b) / np.asarray(floor, dtype=float)


def ipw_increment(
    served_c: npt.NDArray[np.bool_] | bool,
    served_h: npt.NDArray[np.bool_] | bool,
    reward: FloatArray | float,
    baseline: FloatArray | float,
    probability: FloatArray | float,
) -> FloatArray:
    """The step ``x`` of one rewarded call (see the module docstring)."""
    centred = (np.asarray(reward, dtype=float) - baseline) / np.asarray(probability, dtype=float)
    return np.where(served_c, centred, np.where(served_h, -centred, 0.0))


def probation_length(min_detectable: float, holdback: float, rollback_alpha: float) -> int:
    """Rewarded calls a probation lasts so that a regression of ``min_detectable`` is
    rolled back with about 80% probability.

    The wealth of the betting test grows by about ``d^2 / (2 v)`` per step, ``v`` the
    variance of the increment with rewards of variance <= 1/4 split ``holdback`` /
    ``1 - holdback`` between the previous and the new champion; the factor 2.5 covers
    the bet's learning and the spread of the path (calibrated with
    :mod:`bench.scenarios`: 5 points worse is rolled back in ~90% of runs).
    """
    if not 0.0 < holdback < 1.0:
        raise ValueError("holdback must be in (0, 1)")
    v = 0.25 * (1.0 / holdback + 1.0 / (1.0 - holdback))
    growth = min_detectable**2 / (2.0 * v)
    return math.ceil(2.5 * math.log(1.0 / rollback_alpha) / growth)


def probation_steps(config: PromotionConfig) -> int:
    """A probation's length in rewarded calls of the prompt: ``probation_samples`` when
    set, else :func:`probation_length` of the config (0: no probation). Without a
    holdback the length is the same; the comparison is then with a frozen record."""
    if config.probation_samples is not None:
        return config.probation_samples
    holdback = config.probation_holdback if config.holds_back else PROBATION_HOLDBACK
    return probation_length(config.probation_min_detectable, holdback, config.rollback_alpha)
