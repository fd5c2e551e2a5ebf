"""``[reward]``: what counts as success, and turning a feedback value into a reward.

:func:`normalise_feedback` is the one place a feedback value (a thumbs-up, a 1-5 star
rating) becomes the 0..1 reward the statistics use. It is pure: the sidecar's feedback
route calls it and answers 400 with its message when it raises.
"""

from __future__ import annotations

import math
from typing import Protocol

from pydantic import Field, model_validator

from prompts.base import SpecModel
from prompts.errors import FeedbackError, SpecError
from prompts.values import json_type

__all__ = ["FeedbackError", "RewardSpec", "normalise_feedback"]


class RewardSpec(SpecModel):
    """``[reward]``: what counts as success, and what it costs."""

    feedback: str = "thumbs_up"
    """Name of the feedback that is the reward (bool, or a number in 0..1 or ``scale``)."""
    scale: tuple[float, float] | None = None
    """``[min, max]`` of numeric feedback (e.g. ``[1, 5]`` stars), mapped linearly to 0..1;
    None: numbers must already be in 0..1."""
    cost_weight: float = Field(default=0.0, ge=0)
    """Reward subtracted per USD of cost."""
    latency_weight: float = Field(default=0.0, ge=0)
    """Reward subtracted per second of latency."""
    max_cost_usd: float | None = Field(default=None, gt=0)
    """Hard constraint: mean cost per call above this disqualifies a variant."""
    max_p95_latency_ms: float | None = Field(default=None, gt=0)
    """Hard constraint on p95 latency."""
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    """Hard constraint on the share of failed calls."""

    @model_validator(mode="after")
    def _check_scale(self) -> RewardSpec:
        if self.scale is not None:
            low, high = self.scale
            if not (math.isfinite(low) and math.isfinite(high)):
                raise SpecError([("scale", "both ends must be finite numbers")])
            if low >= high:
                raise SpecError([("scale", f"[{low:g}, {high:g}]: min must be below max")])
        return self

    def scale_text(self) -> str:
        """The range numeric feedback must be in, as users write it: ``[1, 5]``."""
        low, high = self.scale if self.scale is not None else (0.0, 1.0)
        return f"[{low:g}, {high:g}]"


class _HasReward(Protocol):
    @property
    def reward(self) -> RewardSpec: ...


def normalise_feedback(value: object, spec: RewardSpec | _HasReward) -> float:
    """The reward in 0..1 that feedback ``value`` means under ``spec`` (a prompt or its
    ``[reward]``).

    ``True``/``False`` are 1 and 0. A number must lie in ``[reward] scale`` (default
    ``[0, 1]``) and is mapped linearly onto 0..1. Anything else (a string, null, NaN, an
    integer too large for a float, a number outside the scale) raises
    :class:`FeedbackError` with a message that names the scale.
    """
    reward = spec if isinstance(spec, RewardSpec) else spec.reward
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float):
        raise FeedbackError(
            f"feedback value must be a boolean or a number in {reward.scale_text()}, "
            f"got {json_type(value)}"
        )
    try:
        number = float(value)
    except OverflowError:
        raise FeedbackError(
            f"feedback value is too large; expected a number in {reward.scale_text()}"
        ) from None
    if math.isnan(number):
        raise FeedbackError(f"feedback value must be a number in {reward.scale_text()}, got NaN")
    low, high = reward.scale if reward.scale is not None else (0.0, 1.0)
    if not low <= number <= high:
        hint = "" if reward.scale is not None else " (set [reward] scale = [min, max] for others)"
        raise FeedbackError(
            f"feedback value {number:g} is outside the scale {reward.scale_text()}{hint}"
        )
    return (number - low) / (high - low)
