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

__all__ = ["DEFAULT_SCALE", "FeedbackError", "RewardSpec", "normalise_feedback", "scale_text"]


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


class _HasReward(Protocol):
    @property
    def reward(self) -> RewardSpec: ...


DEFAULT_SCALE: tuple[float, float] = (0.0, 1.0)
"""The scale of a prompt whose ``[reward]`` sets none."""

Scale = tuple[float, float]


def _scale_of(spec: RewardSpec | _HasReward | Scale | None) -> Scale:
    if spec is None:
        return DEFAULT_SCALE
    if isinstance(spec, tuple):
        return (float(spec[0]), float(spec[1]))
    reward = spec if isinstance(spec, RewardSpec) else spec.reward
    return reward.scale if reward.scale is not None else DEFAULT_SCALE


def scale_text(scale: Scale) -> str:
    """A scale as users write it: ``[1, 5]``."""
    return f"[{scale[0]:g}, {scale[1]:g}]"


def normalise_feedback(value: object, spec: RewardSpec | _HasReward | Scale | None = None) -> float:
    """The reward in 0..1 that feedback ``value`` means under ``spec``: a prompt, its
    ``[reward]``, or a ``(min, max)`` scale (None: ``[0, 1]``).

    A number must lie on the scale and is mapped linearly onto 0..1; it is never
    clipped (a 1-5 star rating sent to a 0..1 prompt is an error, not a 1.0). ``True`` /
    ``False`` are 1 and 0 on the default scale only (a thumbs-up is no star rating).
    Anything else (a string, null, NaN, an integer too large for a float) raises
    :class:`FeedbackError`, whose message names the scale and whose ``scale`` holds it.
    """
    low, high = scale = _scale_of(spec)
    shown = scale_text(scale)
    if isinstance(value, bool):
        if scale != DEFAULT_SCALE:
            raise FeedbackError(f"expects a number on the scale {shown}, got a boolean", scale)
        return 1.0 if value else 0.0
    if not isinstance(value, int | float):
        raise FeedbackError(
            f"expects a boolean or a number on the scale {shown}, got {json_type(value)}", scale
        )
    try:
        number = float(value)
    except OverflowError:
        raise FeedbackError(
            f"too large a number; expects one on the scale {shown}", scale
        ) from None
    if not math.isfinite(number):
        raise FeedbackError(f"expects a finite number on the scale {shown}, got {number}", scale)
    if not low <= number <= high:
        hint = "" if scale != DEFAULT_SCALE else " (set [reward] scale = [min, max] for others)"
        raise FeedbackError(f"{number:g} is outside the scale {shown}{hint}", scale)
    return (number - low) / (high - low)
