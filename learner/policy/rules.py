"""The promotion, rollback and retirement policy: state + config + seeded rng -> decision.

:func:`decide` is pure: no I/O, no clock; its only randomness is the Monte Carlo of
P(best) with more than :data:`learner.stats.pbest.EXACT_MAX_ARMS` arms, drawn from the
``numpy.random.Generator`` the caller passes (the learner seeds it from the stream
sequence), so a replay decides identically.

Rules (thresholds from :class:`prompts.config.PromotionConfig`)
----------------------------------------------------------------
**Promote** a challenger ``c`` over the champion ``h`` when all of these hold:

1. both have ``n >= min_samples`` rewarded executions;
2. the hard constraints hold for ``c`` (when set): mean cost per call
   ``<= max_cost_usd``, p95 latency ``<= max_p95_latency_ms``, error rate
   ``<= max_error_rate``. An unknown figure (no data) counts as a breach: a promotion
   must be shown to respect the constraint;
3. ``lift = mean_c - mean_h >= min_lift``;
4. the always-valid mSPRT (:mod:`learner.stats.sequential`) rejects ``mu_c = mu_h`` at
   ``alpha / K`` with a positive lift, ``K`` the number of challengers being compared
   with the champion (Bonferroni: with several challengers the chance that *any* of
   them is falsely promoted stays <= alpha);
5. ``P(theta_c > theta_h) >= threshold`` under the Beta posteriors (integrated
   numerically, :mod:`learner.stats.pbest`).

The sequential test is what makes checking after every event safe; the posterior
probability is what users read; the lift and constraints make a promotion worth it.
When several challengers qualify, the one with the highest mean is promoted.
No promotion while exploration is paused or while a probation is running.

**Probation and rollback.** After a promotion the new champion is on probation for
:func:`learner.stats.etest.probation_steps` rewarded calls of the prompt (long enough to
catch a regression of ``probation_min_detectable`` with ~80% probability, or
``probation_samples``). The previous champion keeps ``probation_holdback`` of the
traffic (status ``holdback``) and is compared with the new one on the same calls since
the promotion, weighted by the logged routing probabilities
(:class:`learner.policy.concurrent.ProbationTest`); only data since the promotion
counts, so the lucky streak that got it promoted (the winner's curse) cannot hide a
regression, and a drift of both arms cancels. The previous champion is never retired
during the probation (it is the rollback target); once the probation passes it is an
ordinary challenger again, tested against the new champion. It is rolled back when

* the same-period e-process of "the previous champion is better" reaches
  ``1 / rollback_alpha`` within the probation (a significant regression; without a
  holdback, the mSPRT of ``since`` against the previous champion's record frozen at the
  promotion), or
* its error rate since the promotion significantly exceeds ``max_error_rate``: an
  always-valid one-sided test of ``H0: error rate <= max_error_rate`` (Beta(1, 1)
  mixture over rates above the limit; see :func:`learner.policy.probation.error_rate_breach`) rejects at
  ``rollback_alpha``. A point estimate would roll back on the first unlucky error.

Rollback checks run even while exploration is paused.

**Retire** a challenger whose ``P(best)`` among the active arms is below
``retire_below`` once it has ``min_samples``. The previous champion is not retired
while its successor is on probation (it is the rollback target).

Cost: P(beats) and P(best) are integrated by Gauss-Legendre quadrature
(:mod:`learner.stats.pbest`; 50-200 us for two or three arms, deterministic), with a seeded
Monte Carlo only beyond :data:`learner.stats.pbest.EXACT_MAX_ARMS` arms. ``decide`` computes
P(beats) only once the cheap promotion guards pass, and P(best) for retirement only
when a normal approximation (:func:`learner.policy.guards.retire_screen`, with a safety
margin) says it could be below ``retire_below``.

Modules: the state and its transitions are in :mod:`learner.policy.state`, the
promotion guards and the retirement screen in :mod:`learner.policy.guards`, probation and
rollback in :mod:`learner.policy.probation`; this module puts them in order.
"""

from __future__ import annotations

import math

import numpy as np

from promptlab.events.models import Evidence, Interval
from promptlab.learner.policy.guards import check_promotion, lift_with_interval, retire_screen
from promptlab.learner.policy.probation import check_rollback
from promptlab.learner.policy.state import Decision, Probation, PromptState
from promptlab.learner.stats.beta import DEFAULT_DRAWS, p_best, to_arm_evidence
from promptlab.learner.stats.etest import probation_steps
from promptlab.learner.stats.pbest import EXACT_MAX_ARMS
from promptlab.learner.stats.sequential import DEFAULT_TAU2
from promptlab.prompts.config import PromotionConfig

__all__ = [
    "Decision",
    "Probation",
    "PromptState",
    "check_promotion",
    "decide",
    "lift_with_interval",
    "recommendation",
]


def decide(
    state: PromptState,
    config: PromotionConfig,
    rng: np.random.Generator,
    *,
    tau2: float = DEFAULT_TAU2,
    draws: int = DEFAULT_DRAWS,
) -> Decision | None:
    """The policy's decision for one prompt now, or None.

    Order: a running probation's rollback check; then (unless paused) a promotion if no
    probation is running; then (unless paused) a retirement. At most one decision per call;
    the learner publishes it; the projection applies the event (:mod:`learner.statuses`).
    """
    on_probation = state.probation_active(config)
    # A test that crossed within the probation rolls back even if the batch that held
    # the crossing also held the probation's last step.
    crossed = (
        state.probation is not None
        and state.probation.test is not None
        and state.probation.test.rolls_back
    )
    if on_probation or crossed:
        rollback = check_rollback(state, config, rng, tau2=tau2, draws=draws)
        if rollback is not None:
            return rollback
    if state.paused:
        return None
    if not on_probation:
        promotion = _check_promotions(state, config, rng, tau2=tau2, draws=draws)
        if promotion is not None:
            return promotion
    return _check_retirements(state, config, rng, draws=draws, on_probation=on_probation)


def _check_promotions(
    state: PromptState,
    config: PromotionConfig,
    rng: np.random.Generator,
    *,
    tau2: float,
    draws: int,
) -> Decision | None:
    # Highest mean first; name breaks ties so the order never depends on dict order.
    order = sorted(
        (v for v in state.challengers if state.arms[v].n > 0),
        key=lambda v: (-state.arms[v].mean, v),
    )
    for variant in order:
        check = check_promotion(state, variant, config, rng, tau2=tau2, draws=draws)
        if check.passes:
            c, h = state.arms[variant], state.arms[state.champion]
            rule = (
                f"P({variant}>{state.champion})={check.p_better:.3f}>={config.threshold}, "
                f"n={c.n}/{h.n}>={config.min_samples}, lift {check.lift:+.4f}>={config.min_lift}, "
                f"{'e-LOND p' if state.concurrent is not None else 'mSPRT p'}={check.p_value:.3g}"
                f"<={check.alpha:.3g}, hard constraints hold"
            )
            evidence = Evidence(
                challenger=to_arm_evidence(c),
                champion=to_arm_evidence(h),
                p_better=check.p_better,
                p_value=check.p_value,
                # The means shown, their difference and its interval agree; the
                # same-period estimate the test used is in the rule and the details.
                lift=check.whole_history_lift,
                lift_interval=check.lift_interval,
                rule=rule,
                details={
                    "test": "same-period e-value, e-LOND"
                    if state.concurrent is not None
                    else "whole-history mSPRT, Bonferroni",
                    "tau2": tau2,
                    "alpha_per_test": check.alpha,
                    "challengers": len(state.challengers),
                    "draws": draws,
                    "same_period_lift": check.lift,
                },
            )
            return Decision(
                kind="promote",
                variant=variant,
                counterpart=state.champion,
                evidence=evidence,
                reason=rule,
            )
    return None


def _check_retirements(
    state: PromptState,
    config: PromotionConfig,
    rng: np.random.Generator,
    *,
    draws: int,
    on_probation: bool,
) -> Decision | None:
    protected = state.probation.previous if (on_probation and state.probation is not None) else None
    candidates = [
        v for v in state.challengers if v != protected and state.arms[v].n >= config.min_samples
    ]
    if state.concurrent is not None:
        return _check_futility(state, config, candidates)
    candidates = [v for v in candidates if retire_screen(state, v, config.retire_below)]
    if not candidates:
        return None
    active = state.active
    posteriors = [state.arms[v].posterior for v in active]
    if len(active) > EXACT_MAX_ARMS:
        # Monte Carlo (many arms): a quick pass settles the usual case (clearly above
        # the threshold, by four standard errors at it); only otherwise all draws decide.
        quick = max(1, draws // 8)
        probs = p_best(posteriors, rng, quick)
        cutoff = config.retire_below + 4.0 * math.sqrt(
            config.retire_below * (1.0 - config.retire_below) / quick
        )
        if all(probs[active.index(v)] > cutoff for v in candidates):
            return None
    probs = p_best(posteriors, rng, draws)
    by_name = dict(zip(active, probs.tolist(), strict=True))
    below = sorted((by_name[v], v) for v in candidates if by_name[v] < config.retire_below)
    if not below:
        return None
    pb, variant = below[0]
    c, h = state.arms[variant], state.arms[state.champion]
    lift, interval = lift_with_interval(c, h, config.alpha)
    rule = f"P(best)={pb:.4f}<{config.retire_below} after n={c.n}>={config.min_samples}"
    evidence = Evidence(
        challenger=to_arm_evidence(c),
        champion=to_arm_evidence(h),
        p_better=None,
        lift=lift,
        lift_interval=interval,
        rule=rule,
        details={"p_best": by_name, "draws": draws},
    )
    return Decision(
        kind="retire", variant=variant, counterpart=state.champion, evidence=evidence, reason=rule
    )


def _check_futility(
    state: PromptState, config: PromotionConfig, candidates: list[str]
) -> Decision | None:
    """Retire the first challenger (by name) whose same-period test rejects
    ``lift >= min_lift`` at ``futility_alpha``: the always-valid upper bound of its lift
    is below ``min_lift``, so it will not be worth a promotion."""
    assert state.concurrent is not None
    bar = -math.log(config.futility_alpha)
    for variant in candidates:
        test = state.concurrent.get(variant)
        if test is None or test.futility_max_log_wealth < bar:
            continue
        c, h = state.arms[variant], state.arms[state.champion]
        lift, interval = lift_with_interval(c, h, config.alpha)
        rule = (
            f"futility: same-period lift {test.lift:+.4f} over {test.steps} steps, "
            f"e-value of lift<{config.min_lift} {math.exp(min(test.futility_max_log_wealth, 700)):.3g}"
            f" >= 1/{config.futility_alpha}"
        )
        evidence = Evidence(
            challenger=to_arm_evidence(c),
            champion=to_arm_evidence(h),
            p_better=None,
            lift=lift,
            lift_interval=interval,
            rule=rule,
            details={
                "steps": test.steps,
                "futility_alpha": config.futility_alpha,
                "same_period_lift": test.lift,
            },
        )
        return Decision(
            kind="retire",
            variant=variant,
            counterpart=state.champion,
            evidence=evidence,
            reason=rule,
        )
    return None


# --------------------------------------------------------------------------- recommendation


def recommendation(
    state: PromptState,
    config: PromotionConfig,
    rng: np.random.Generator,
    *,
    tau2: float = DEFAULT_TAU2,
    draws: int = DEFAULT_DRAWS,
) -> str:
    """One line for ``promptlab stats``: what the policy would do, or why it waits.

    e.g. ``"promote v2 (P=0.97, lift +0.050 [+0.020, +0.080])"``, ``"retire v3 (P(best)=0.004)"``,
    ``"keep exploring (leader v2: P=0.81, lift +0.020 [-0.010, +0.050])"``,
    ``"insufficient data (v2 120/200)"``. Intervals are the always-valid ones.
    """
    decision = decide(state, config, rng, tau2=tau2, draws=draws)
    if decision is not None:
        ev = decision.evidence
        if decision.kind == "promote":
            return f"promote {decision.variant} (P={ev.p_better:.2f}, lift {_lift_text(ev.lift, ev.lift_interval)})"
        if decision.kind == "rollback":
            return f"roll back {decision.variant} to {decision.counterpart} ({ev.rule})"
        return f"retire {decision.variant} ({ev.rule})"
    if state.probation_active(config):
        assert state.probation is not None
        test = state.probation.test
        if test is not None:
            return f"probation: {state.champion} {test.steps}/{test.length} calls since promotion, holdback {state.probation.previous}"
        return f"probation: {state.champion} {state.probation.since.n}/{probation_steps(config)} since promotion"
    if state.paused:
        return "paused (champion only)"
    challengers = state.challengers
    if not challengers:
        return "no challengers"
    champ = state.arms[state.champion]
    short = [v for v in challengers if state.arms[v].n < config.min_samples]
    if champ.n < config.min_samples or len(short) == len(challengers):
        waiting = [
            f"{v} {state.arms[v].n}/{config.min_samples}"
            for v in [state.champion, *challengers]
            if state.arms[v].n < config.min_samples
        ]
        return "insufficient data (" + ", ".join(waiting) + ")"
    ready = [v for v in challengers if v not in short]
    leader = max(ready, key=lambda v: (state.arms[v].mean, v))
    check = check_promotion(
        state, leader, config, rng, tau2=tau2, draws=draws, always_compute_p=True
    )
    return f"keep exploring (leader {leader}: P={check.p_better:.2f}, lift {_lift_text(check.lift, check.lift_interval)})"


def _lift_text(lift: float | None, interval: Interval | None) -> str:
    if lift is None:
        return "n/a"
    if interval is None:
        return f"{lift:+.3f}"
    return f"{lift:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]"
