"""Turning feedback into a reward in 0..1, per a prompt's ``[reward]`` section.

The rules, which replay must apply identically, are:

* only feedback named as the prompt's reward metric counts (a prompt the learner has
  no file for accepts any name);
* ``True``/``False`` become 1/0; numbers are clipped to 0..1;
* optional weights subtract cost (per USD) and latency (per second) from it, and the
  result is clipped to 0..1 again;
* the ``[reward]`` hard constraints (mean cost, p95 latency, error rate) are not
  applied per call: they bound which variant may be promoted (see
  :func:`effective_promotion`);
* the **first** reward feedback of an execution (lowest stream sequence) counts; later
  ones for the same execution are ignored, so an app that resends feedback cannot
  weigh one call twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from learner.stats.beta import composite_reward
from prompts.config import PromotionConfig
from prompts.spec import PromptSpec


@dataclass(frozen=True, slots=True)
class RewardRule:
    """How one prompt's feedback becomes a reward."""

    feedback: str | None = None
    """Name of the feedback metric that is the reward; None accepts any name."""
    cost_weight: float = 0.0
    """Reward lost per USD of cost."""
    latency_weight: float = 0.0
    """Reward lost per second of latency."""

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


def feedback_value(value: bool | float) -> float | None:
    """A feedback value as a number in 0..1 (bool -> 0/1, numbers clipped); None for
    NaN, which carries no information and would poison every sum it touched."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    number = float(value)
    return None if math.isnan(number) else clip01(number)


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
    )


def rules_from_prompts(prompts: Mapping[str, PromptSpec]) -> dict[str, RewardRule]:
    """Reward rules of every loaded prompt, by prompt id."""
    return {prompt_id: rule_from_spec(spec) for prompt_id, spec in prompts.items()}


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
