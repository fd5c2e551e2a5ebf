"""The seam between the learner service and the promotion policy.

A :data:`Policy` looks at one prompt (its :class:`PromptView` and analysis) with a
generator seeded from the stream position and returns the decision event to publish,
or None. Decision ids derive from the prompt, the decision and the trigger sequence.

:func:`default_policy` is an **interim** rule set built on :mod:`learner.stats` and
:mod:`learner.sequential`, following the issue's rules, until :mod:`learner.policy`
(the statistician's ``decide(state, config, rng)``) lands; then this module becomes
the adapter from :class:`PromptView` to that function's state.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from events.models import (
    BaseEvent,
    Evidence,
    VariantPromoted,
    VariantRetired,
    VariantRolledBack,
    deterministic_event_id,
)
from learner.analysis import PromptAnalysis, to_summary
from learner.sequential import msprt
from learner.stats import ArmSummary, to_arm_evidence
from learner.view import PromptView

Policy = Callable[[PromptView, PromptAnalysis, np.random.Generator, int], BaseEvent | None]
"""``(view, analysis, rng, trigger_sequence) -> decision event or None``."""


def _id(kind: str, view: PromptView, variant: str, trigger: int) -> str:
    return deterministic_event_id("decision", kind, view.prompt_id, variant, trigger)


def default_policy(
    view: PromptView, analysis: PromptAnalysis, rng: np.random.Generator, trigger_sequence: int
) -> BaseEvent | None:
    """Roll back a regressing probation, else promote a proven challenger, else retire a
    hopeless one. Paused prompts only get rollbacks (safety over exploration)."""
    cfg = view.config
    summaries = {a.variant: to_summary(a) for a in view.active}
    champion = summaries.get(view.champion)
    if champion is None:
        return None

    if view.probation_variant == view.champion and view.previous_champion in summaries:
        n = view.probation_rewarded
        # Only the probation data is judged; its squared sum is taken as the sum, which
        # is exact for 0/1 rewards and overstates the variance (conservative) otherwise.
        since = ArmSummary(
            view.champion,
            n=n,
            reward_sum=view.probation_reward_sum,
            reward_sq_sum=view.probation_reward_sum,
        )
        previous = summaries[view.previous_champion]
        test = msprt(previous, since)
        if n > 0 and test.lift > 0 and test.rejects(cfg.rollback_alpha):
            return VariantRolledBack(
                event_id=_id("rollback", view, view.champion, trigger_sequence),
                prompt_id=view.prompt_id,
                variant=view.champion,
                restored=view.previous_champion,
                evidence=Evidence(
                    challenger=to_arm_evidence(since),
                    champion=to_arm_evidence(previous),
                    p_value=test.p_value,
                    lift=-test.lift,
                    rule=f"probation regression: msprt p<={cfg.rollback_alpha}",
                ),
                trigger_sequence=trigger_sequence,
            )
        return None
    if view.paused or champion.n < cfg.min_samples:
        return None

    for name, summary in summaries.items():
        a = analysis.arms.get(name)
        if name == view.champion or a is None or summary.n < cfg.min_samples:
            continue
        test = msprt(summary, champion)
        p_better = a.p_beats_champion or 0.0
        ok = (
            (cfg.max_cost_usd is None or (summary.cost_mean_usd or 0.0) <= cfg.max_cost_usd)
            and (cfg.max_error_rate is None or (summary.error_rate or 0.0) <= cfg.max_error_rate)
            and (
                cfg.max_p95_latency_ms is None
                or (summary.latency_p95_ms or 0.0) <= cfg.max_p95_latency_ms
            )
        )
        if (
            ok
            and p_better >= cfg.threshold
            and test.lift >= cfg.min_lift
            and test.rejects(cfg.alpha)
        ):
            cs = test.confidence_sequence(cfg.alpha)
            return VariantPromoted(
                event_id=_id("promote", view, name, trigger_sequence),
                prompt_id=view.prompt_id,
                variant=name,
                previous_champion=view.champion,
                evidence=Evidence(
                    challenger=to_arm_evidence(summary),
                    champion=to_arm_evidence(champion),
                    p_better=p_better,
                    p_value=test.p_value,
                    lift=test.lift,
                    lift_interval=cs,
                    rule=f"P(better)>={cfg.threshold}, lift>={cfg.min_lift}, msprt p<={cfg.alpha}",
                ),
                trigger_sequence=trigger_sequence,
            )
    for name, summary in summaries.items():
        a = analysis.arms.get(name)
        if (
            name != view.champion
            and a is not None
            and summary.n >= cfg.min_samples
            and (a.p_best or 0.0) < cfg.retire_below
        ):
            return VariantRetired(
                event_id=_id("retire", view, name, trigger_sequence),
                prompt_id=view.prompt_id,
                variant=name,
                reason=f"P(best)={a.p_best:.4f} < {cfg.retire_below} after {summary.n} rewarded calls",
                evidence=Evidence(
                    challenger=to_arm_evidence(summary),
                    champion=to_arm_evidence(champion),
                    rule="P(best) below retire_below",
                ),
                trigger_sequence=trigger_sequence,
            )
    return None
