"""Turning feedback into a reward in 0..1, per a prompt's ``[reward]`` section.

The rules, which replay must apply identically, are:

* only feedback named as the prompt's reward metric counts (a prompt the learner has
  no file for accepts any name);
* a value is mapped from the prompt's ``[reward] scale`` (default ``[0, 1]``) onto 0..1 by
  :func:`prompts.feedback.normalise_feedback`; a value off the scale (or a bool on a
  non-default scale) is rejected and counted, never clipped;
* optional weights subtract cost (per USD) and latency (per second) from it, and the
  result is clipped to 0..1 again;
* the ``[reward]`` hard constraints (mean cost, p95 latency, error rate) are not
  applied per call: they bound which variant may be promoted (see
  :func:`effective_promotion`);
* a repeated reward feedback for the same execution follows ``learner.feedback_repeat``:
  ``last`` (default) replaces the reward in the statistics (a user who corrects a
  rating), ``first`` keeps the first; either way one call weighs once. (A probation's
  counters keep the first rating: they are a record of what was known then.)
* feedback whose execution has not arrived waits ``learner.feedback_wait_s`` of *event
  time* (the newest ``occurred_at`` the stream has shown), then is dropped and counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from promptlab.learner.stats.beta import composite_reward
from promptlab.prompts.config import PromotionConfig
from promptlab.prompts.feedback import FeedbackValueError, normalise_feedback
from promptlab.prompts.spec import PromptSpec


@dataclass(frozen=True, slots=True)
class RewardRule:
    """How one prompt's feedback becomes a reward."""

    feedback: str | None = None
    """Name of the feedback metric that is the reward; None accepts any name."""
    cost_weight: float = 0.0
    """Reward lost per USD of cost."""
    latency_weight: float = 0.0
    """Reward lost per second of latency."""
    scale: tuple[float, float] | None = None
    """``[reward] scale``: the range of the feedback's values (None: 0..1)."""

    def normalise(self, value: bool | float) -> float | None:
        """A raw feedback value on 0..1, or None when it is off the scale."""
        try:
            return normalise_feedback(value, self.scale)
        except FeedbackValueError:
            return None

    def accepts(self, name: str) -> bool:
        return self.feedback is None or name == self.feedback

    def reward(self, value: float, cost_usd: float, latency_ms: float) -> float:
        """The reward of a call whose clipped feedback value is ``value``
        (:func:`learner.stats.beta.composite_reward`, the one reward rule)."""
        return composite_reward(
            value,
            cost_usd=cost_usd,
            latency_ms=latency_ms,
            cost_weight=self.cost_weight,
            latency_weight=self.latency_weight,
        )


def clip01(value: float) -> float:
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else float(value)


def raw_value(value: bool | float) -> bool | float | None:
    """A feedback value as it was sent (a bool stays a bool: it fits only the default
    scale); None for NaN or an infinity, which carry no information and would poison
    every sum they touched."""
    if isinstance(value, bool):
        return value
    number = float(value)
    return number if math.isfinite(number) else None


def finite(value: float | None, default: float = 0.0) -> float:
    """``value`` when it is a finite number, else ``default`` (NaN/inf latencies, costs)."""
    return float(value) if value is not None and math.isfinite(value) else default


def rule_from_spec(spec: PromptSpec) -> RewardRule:
    """The :class:`RewardRule` of a prompt file's ``[reward]`` section."""
    reward = spec.reward
    return RewardRule(
        feedback=reward.feedback,
        cost_weight=reward.cost_weight,
        latency_weight=reward.latency_weight,
        scale=reward.scale,
    )


def rules_from_prompts(prompts: Mapping[str, PromptSpec]) -> dict[str, RewardRule]:
    """Reward rules of every loaded prompt, by prompt id."""
    return {prompt_id: rule_from_spec(spec) for prompt_id, spec in prompts.items()}


def routing_from_prompts(
    prompts: Mapping[str, PromptSpec],
) -> Callable[[str], tuple[float, float] | None]:
    """``prompt id -> (exploration_cap, exploration_floor)`` of the loaded prompts (None
    for others): what bounds the same-period tests' steps in the projection."""

    def routing(prompt_id: str) -> tuple[float, float] | None:
        spec = prompts.get(prompt_id)
        return (
            None if spec is None else (spec.routing.exploration_cap, spec.routing.exploration_floor)
        )

    return routing


def effective_promotion(spec: PromptSpec | None, global_cfg: PromotionConfig) -> PromotionConfig:
    """A prompt's promotion thresholds: global, its ``[promotion]`` overrides, and the
    hard constraints of its ``[reward]`` section (which win when set)."""
    if spec is None:
        return global_cfg
    cfg = spec.promotion_config(global_cfg)
    reward = spec.reward
    hard = {
        "max_cost_usd": reward.max_cost_usd,
        "max_p95_latency_ms": reward.max_p95_latency_ms,
        "max_error_rate": reward.max_error_rate,
    }
    overrides = {k: v for k, v in hard.items() if v is not None}
    return cfg.model_copy(update=overrides) if overrides else cfg
