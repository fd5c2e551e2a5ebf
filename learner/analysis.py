"""The adapter from a projected :class:`PromptView` to the policy, and the per-arm
numbers snapshots and ``promptlab stats`` show (posterior, interval, P(best), lift,
recommendation).

:func:`prompt_state` builds the policy's :class:`~learner.policy.rules.PromptState` (the one
place that maps projection rows to policy state); :func:`analyze` computes the display
numbers with :mod:`learner.stats.beta` and :mod:`learner.policy.rules`. Both take a seeded generator
at most (seeded from the learner seed and the prompt's stream position, so the same
state always shows the same numbers) and never do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from promptlab.events.snapshots import VariantStatus
from promptlab.learner.policy.concurrent import ConcurrentTest, ProbationTest
from promptlab.learner.policy.rules import (
    Probation,
    PromptState,
    lift_with_interval,
    recommendation,
)
from promptlab.learner.stats import beta as stats
from promptlab.learner.stats.beta import ArmSummary
from promptlab.learner.stats.etest import probation_steps
from promptlab.learner.storage.store import ArmTotals
from promptlab.learner.storage.view import ArmView, PromptView

P_BEST_DRAWS = stats.DEFAULT_DRAWS


@dataclass(frozen=True, slots=True)
class ArmAnalysis:
    variant: str
    alpha: float
    beta: float
    mean: float | None
    low: float | None
    high: float | None
    p_best: float | None
    p_beats_champion: float | None


@dataclass(frozen=True, slots=True)
class PromptAnalysis:
    arms: dict[str, ArmAnalysis]
    leader: str | None
    lift: float | None
    lift_low: float | None
    lift_high: float | None
    recommendation: str


def rng_for(seed: int, sequence: int) -> np.random.Generator:
    """The generator for decisions at one stream position: same inputs, same draws."""
    return np.random.default_rng([seed & 0xFFFFFFFF, sequence])


def summary_of(
    variant: str,
    totals: ArmTotals | None,
    latency_p50_ms: float | None = None,
    latency_p95_ms: float | None = None,
) -> ArmSummary:
    """Projected counters as the statistician's :class:`ArmSummary`."""
    if totals is None:
        return ArmSummary(variant=variant)
    n, s = totals.rewarded, totals.reward_sum
    return ArmSummary(
        variant=variant,
        n=n,
        reward_sum=min(max(s, 0.0), float(n)),
        # Stored sums are rounded to 1e-6 per reward: keep them inside the bounds that
        # ArmSummary checks (sum r^2 <= sum r, and >= (sum r)^2 / n).
        reward_sq_sum=min(max(totals.reward_sq_sum, s * s / n if n else 0.0), s),
        executions=totals.executions,
        errors=totals.errors,
        cost_sum=totals.cost_usd,
        latency_p50_ms=latency_p50_ms,
        latency_p95_ms=latency_p95_ms,
    )


def to_summary(arm: ArmView) -> ArmSummary:
    """An arm's decision counters (the evaluation window, or all data) as a summary."""
    return summary_of(arm.variant, arm.totals, arm.latency_p50_ms, arm.latency_p95_ms)


def prompt_state(view: PromptView) -> PromptState:
    """The policy's :class:`PromptState` of a view.

    Every registered arm with its windowed counters and status; the probation record
    of the last promotion (the champion's counters since, the previous champion's
    frozen at the promotion) when there is one. The policy itself decides whether that
    probation is still running (``probation_samples``). Percentiles cannot be frozen,
    so the baseline carries the previous champion's current latency figures.
    """
    arms = {name: to_summary(arm) for name, arm in view.arms.items()}
    statuses = {name: cast(VariantStatus, arm.status) for name, arm in view.arms.items()}
    probation = None
    previous = view.previous_champion
    if (
        previous is not None
        and previous != view.champion
        and previous in view.arms
        and view.probation_since is not None
        and view.probation_baseline is not None
    ):
        before = view.arms[previous]
        probation = Probation(
            champion=view.champion,
            previous=previous,
            baseline=summary_of(
                previous, view.probation_baseline, before.latency_p50_ms, before.latency_p95_ms
            ),
            since=summary_of(view.champion, view.probation_since),
            test=_probation_test(view, previous),
        )
    return PromptState(
        champion=view.champion,
        arms=arms,
        statuses=statuses,
        probation=probation,
        paused=view.paused,
        concurrent=_concurrent(view, statuses),
    )


def _probation_test(view: PromptView, previous: str) -> ProbationTest | None:
    """The same-period test of the last promotion against the holdback of the previous
    champion, as the projection keeps it (None without a holdback or a view without
    history)."""
    config = view.config
    if not view.registered or not config.holds_back or not view.probation_test:
        return None
    return ProbationTest.from_state(
        view.champion,
        previous,
        view.probation_test,
        steps=view.probation_steps,
        length=probation_steps(config),
        rollback_alpha=config.rollback_alpha,
    )


def _concurrent(
    view: PromptView, statuses: dict[str, VariantStatus]
) -> dict[str, ConcurrentTest] | None:
    """The same-period test of every live challenger, as the projection keeps it (None
    for a view without history: the policy then falls back to the summaries)."""
    if not view.registered:
        return None
    discoveries = sum(
        1 for _, kind, _, reason in view.champion_changes if kind == "promoted" and reason == "auto"
    )
    return {
        v: ConcurrentTest.from_state(
            v,
            view.champion,
            number,
            state,
            alpha=view.config.alpha,
            min_lift=view.config.min_lift,
            discoveries=discoveries,
        )
        for v, status in statuses.items()
        if status == "challenger" and v in view.tests
        for number, state in [view.tests[v]]
        if state
    }


def analyze(view: PromptView, rng: np.random.Generator) -> PromptAnalysis:
    """Posterior, interval and P(best) of every active arm, the leader, its lift and the
    policy's recommendation (:func:`learner.policy.rules.recommendation`).

    The lift interval is the always-valid confidence sequence of the mSPRT
    (:func:`learner.policy.rules.lift_with_interval`), so it can be shown after every event
    without overstating certainty.
    """
    state = prompt_state(view)
    summaries = {a.variant: state.arms[a.variant] for a in view.active}
    names = list(summaries)
    posteriors = {v: s.posterior for v, s in summaries.items()}
    best: Any = stats.p_best([posteriors[v] for v in names], rng, P_BEST_DRAWS) if names else []
    p_best = {v: float(best[i]) for i, v in enumerate(names)}
    champion = posteriors.get(view.champion)
    arms = {}
    for name, summary in summaries.items():
        post = posteriors[name]
        interval = summary.reward_interval() if summary.n else None
        beats = None
        if champion is not None and name != view.champion:
            beats = stats.p_beats(post, champion, rng, P_BEST_DRAWS)
        arms[name] = ArmAnalysis(
            variant=name,
            alpha=post.alpha,
            beta=post.beta,
            mean=summary.mean if summary.n else None,
            low=interval.low if interval else None,
            high=interval.high if interval else None,
            p_best=p_best.get(name),
            p_beats_champion=beats,
        )
    # A leader is an arm with evidence: the prior alone must not crown a variant nobody used.
    measured = [v for v in p_best if summaries[v].n]
    leader = max(measured, key=lambda v: (p_best[v], v == view.champion)) if measured else None
    lift = lift_low = lift_high = None
    if leader is not None and leader != view.champion and view.champion in summaries:
        lift, interval = lift_with_interval(
            summaries[leader], summaries[view.champion], view.config.alpha
        )
        lift_low, lift_high = interval.low, interval.high
    advice = recommendation(state, view.config, rng, draws=P_BEST_DRAWS)
    return PromptAnalysis(arms, leader, lift, lift_low, lift_high, advice)
