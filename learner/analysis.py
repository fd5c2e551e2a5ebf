"""Per-arm numbers for snapshots and ``promptlab stats``: posterior, interval, P(best).

A thin adapter between a :class:`PromptView` and the statistics in
:mod:`learner.stats` / :mod:`learner.policy`: it takes a seeded generator (seeded
from the learner seed and the prompt's stream position, so the same state always
shows the same numbers) and never does I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from learner import stats
from learner.sequential import msprt
from learner.stats import ArmSummary
from learner.view import ArmView, PromptView

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


def to_summary(arm: ArmView) -> ArmSummary:
    """An arm's counters as the statistician's :class:`ArmSummary`."""
    totals = arm.totals
    if totals is None:
        return ArmSummary(variant=arm.variant)
    return ArmSummary(
        variant=arm.variant,
        n=totals.rewarded,
        reward_sum=totals.reward_sum,
        # Stored sums are rounded to 1e-6 per reward: keep them inside the bounds that
        # ArmSummary checks (sum r^2 <= sum r, and >= (sum r)^2 / n).
        reward_sq_sum=min(
            max(
                totals.reward_sq_sum,
                totals.reward_sum**2 / totals.rewarded if totals.rewarded else 0.0,
            ),
            totals.reward_sum,
        ),
        executions=totals.executions,
        errors=totals.errors,
        cost_sum=totals.cost_usd,
        latency_p50_ms=arm.latency_p50_ms,
        latency_p95_ms=arm.latency_p95_ms,
    )


def analyze(view: PromptView, rng: np.random.Generator) -> PromptAnalysis:
    """Posterior, interval and P(best) of every active arm, the leader and its lift.

    The lift interval is the always-valid confidence sequence of the mSPRT, so it can be
    shown after every event without overstating certainty.
    """
    summaries = {a.variant: to_summary(a) for a in view.active}
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
    leader = max(p_best, key=lambda v: (p_best[v], v == view.champion)) if p_best else None
    lift = lift_low = lift_high = None
    if leader is not None and leader != view.champion and view.champion in summaries:
        result = msprt(summaries[leader], summaries[view.champion])
        lift = result.lift
        if math.isfinite(result.s2):
            cs = result.confidence_sequence(view.config.alpha)
            lift_low, lift_high = cs.low, cs.high
    return PromptAnalysis(arms, leader, lift, lift_low, lift_high, _recommend(view, arms, leader))


def _recommend(view: PromptView, arms: dict[str, ArmAnalysis], leader: str | None) -> str:
    cfg = view.config
    if view.paused:
        return "exploration paused"
    if view.probation_variant is not None:
        return f"watching {view.probation_variant} on probation"
    challengers = [a for a in view.active if a.variant != view.champion]
    if not challengers:
        return "no challenger: breed or add one"
    ready = [a for a in challengers if a.n >= cfg.min_samples]
    champion = view.arms.get(view.champion)
    if champion is None or champion.n < cfg.min_samples or not ready:
        return "keep exploring"
    best = arms.get(leader or "")
    if (
        leader != view.champion
        and best is not None
        and (best.p_beats_champion or 0.0) >= cfg.threshold
    ):
        return f"promote {leader}"
    losers = [a.variant for a in ready if (arms[a.variant].p_best or 0.0) < cfg.retire_below]
    if losers:
        return "retire " + ", ".join(losers)
    return "keep exploring"
