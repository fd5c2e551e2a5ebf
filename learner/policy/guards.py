"""The promotion guards, and the cheap screen in front of the retirement P(best).

:func:`check_promotion` evaluates every promotion rule for one challenger against the
champion (see :mod:`learner.policy.rules` for the rules) and says which ones block it.
:func:`retire_screen` is a normal-approximation lower bound on P(best), made
pessimistic by :func:`screen_margin`, that lets the policy skip the P(best) computation
for arms that are surely above ``retire_below``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from promptlab.events.models import Interval
from promptlab.learner.policy.state import PromptState
from promptlab.learner.stats.beta import DEFAULT_DRAWS, ArmSummary, p_beats, p_beats_normal
from promptlab.learner.stats.sequential import DEFAULT_TAU2, msprt
from promptlab.prompts.config import PromotionConfig

SCREEN_MARGIN_Z = 1.0
"""Safety margin (in z units) of the normal screen before the P(best) Monte Carlo,
when an arm of the pair has fewer than :data:`LARGE_SAMPLE` rewards.

Over a grid of Beta posteriors (n from 30 to 50,000 per arm, means 0.005 to 0.995),
wherever the exact P(a beats b) is below 0.05 the normal approximation's z is at most
0.84 above the exact one (worst: 30 rewards at 0.045 against 1,000 at 0.005).
``tests/learner/test_policy.py`` checks a sample of that grid against numerical
integration."""

SCREEN_MARGIN_Z_LARGE = 0.5
"""The margin when both arms of the pair have >= :data:`LARGE_SAMPLE` rewards: on the
same grid restricted to n >= 200 the worst error is 0.43 (3 % vs 1 % rewards)."""

LARGE_SAMPLE = 200


def screen_margin(n_a: int, n_b: int) -> float:
    """The z margin of the normal screen for a pair of arms with these sample sizes."""
    return SCREEN_MARGIN_Z_LARGE if min(n_a, n_b) >= LARGE_SAMPLE else SCREEN_MARGIN_Z


def lift_with_interval(
    challenger: ArmSummary, champion: ArmSummary, alpha: float = 0.05, tau2: float = DEFAULT_TAU2
) -> tuple[float, Interval]:
    """``mean_c - mean_h`` and its always-valid (1 - alpha) confidence sequence.

    The interval is the mSPRT's (:meth:`learner.stats.sequential.MsprtResult.confidence_sequence`),
    valid however often it is looked at; it excludes 0 exactly when the test rejects.
    Before the test has enough data it is [-1, 1].
    """
    result = msprt(challenger, champion, tau2=tau2)
    return result.lift, result.confidence_sequence(alpha)


def constraint_breaches(arm: ArmSummary, config: PromotionConfig) -> list[str]:
    out = []
    if config.max_cost_usd is not None:
        cost = arm.cost_mean_usd
        if cost is None or cost > config.max_cost_usd:
            out.append(f"mean cost {_fmt(cost)} > max_cost_usd {config.max_cost_usd}")
    if config.max_p95_latency_ms is not None:
        p95 = arm.latency_p95_ms
        if p95 is None or p95 > config.max_p95_latency_ms:
            out.append(
                f"p95 latency {_fmt(p95)} ms > max_p95_latency_ms {config.max_p95_latency_ms}"
            )
    if config.max_error_rate is not None:
        rate = arm.error_rate
        if rate is None or rate > config.max_error_rate:
            out.append(f"error rate {_fmt(rate)} > max_error_rate {config.max_error_rate}")
    return out


def _fmt(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.4g}"


@dataclass(frozen=True, slots=True)
class PromotionCheck:
    """Every promotion guard for one challenger against the champion."""

    variant: str
    champion: str
    lift: float
    """The test's estimate of the lift: the same-period one when there is a same-period
    test, else the difference of the whole-history means."""
    lift_interval: Interval
    """The whole-history always-valid interval (:func:`lift_with_interval`)."""
    p_value: float
    alpha: float
    """The per-test level (``config.alpha / K``)."""
    p_better: float | None
    """P(challenger beats champion); None when not computed (an earlier guard failed)."""
    blocked_by: tuple[str, ...] = field(default=())
    whole_history_lift: float | None = None
    """``mean_c - mean_h`` over all data (what ``lift_interval`` is an interval of)."""
    """The guards that failed, in words; empty means promote."""

    @property
    def passes(self) -> bool:
        return not self.blocked_by


def check_promotion(
    state: PromptState,
    challenger: str,
    config: PromotionConfig,
    rng: np.random.Generator,
    *,
    tau2: float = DEFAULT_TAU2,
    draws: int = DEFAULT_DRAWS,
    always_compute_p: bool = False,
) -> PromotionCheck:
    """Evaluate the promotion guards for ``challenger`` (see the module doc).

    The Monte Carlo P(beats) is computed only when every other guard passes, unless
    ``always_compute_p`` (for reports). All failing cheap guards are listed.
    """
    c, h = state.arms[challenger], state.arms[state.champion]
    k = max(1, len(state.challengers))
    alpha_each = config.alpha / k
    test = msprt(c, h, tau2=tau2)
    blocked: list[str] = []
    if c.n < config.min_samples or h.n < config.min_samples:
        blocked.append(f"min_samples: n={c.n}/{h.n} < {config.min_samples}")
    blocked += constraint_breaches(c, config)
    lift, p_value = test.lift, test.p_value
    concurrent = state.concurrent.get(challenger) if state.concurrent is not None else None
    if state.concurrent is not None and concurrent is None:
        blocked.append("no same-period test against this champion yet")
    elif concurrent is not None:
        # The same-period, allocation-aware e-process with e-LOND's level for this test
        # (learner.policy.concurrent); its null is lift <= min_lift, so no point check.
        alpha_each = math.exp(-concurrent.log_threshold)
        lift = concurrent.lift if concurrent.lift is not None else test.lift
        p_value = concurrent.p_value
        if not concurrent.promotes:
            blocked.append(
                f"same-period e-value {concurrent.e_value:.3g} < 1/alpha_{concurrent.number}"
                f" = {1 / alpha_each:.3g}"
            )
    else:
        if not test.lift >= config.min_lift:  # also catches NaN
            blocked.append(f"lift {test.lift:+.4f} < min_lift {config.min_lift}")
        if not (test.rejects(alpha_each) and test.lift > 0):
            blocked.append(f"mSPRT p={test.p_value:.3g} > alpha {alpha_each:.3g}")
    p_better: float | None = None
    if not blocked or always_compute_p:
        p_better = p_beats(c.posterior, h.posterior, rng, draws)
        if p_better < config.threshold:
            blocked.append(f"P(beats)={p_better:.3f} < threshold {config.threshold}")
    return PromotionCheck(
        variant=challenger,
        champion=state.champion,
        lift=lift,
        whole_history_lift=test.lift,
        lift_interval=test.confidence_sequence(config.alpha),
        p_value=p_value,
        alpha=alpha_each,
        p_better=p_better,
        blocked_by=tuple(blocked),
    )


def retire_screen(state: PromptState, variant: str, retire_below: float) -> bool:
    """True when ``variant``'s P(best) *might* be below ``retire_below`` (so the Monte Carlo
    is needed); False when it surely is not.

    Lower bound: ``P(best_i) >= 1 - sum_j P(theta_j > theta_i)``; each pairwise term is
    the normal approximation made pessimistic by :func:`screen_margin` z units.
    """
    me = state.arms[variant]
    i = me.posterior
    others = [state.arms[v] for v in state.active if v != variant]
    if not others:
        return False
    lower = 1.0
    for other in others:
        j = other.posterior
        z = float(special.ndtri(p_beats_normal(i.alpha, i.beta, j.alpha, j.beta)))
        lower -= 1.0 - float(special.ndtr(z - screen_margin(me.n, other.n)))
    return lower < retire_below
