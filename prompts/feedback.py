"""What a feedback value means: ``[reward] scale`` maps it onto 0..1 (pure, no I/O).

:func:`normalise_feedback` is the one place a feedback value (a thumbs-up, a 1-5 star
rating) becomes the 0..1 reward the statistics use: the sidecar calls it to answer 400
at once, the learner for feedback the sidecar could not check.
"""

from __future__ import annotations

import math
from typing import Protocol

from promptlab.prompts.errors import FeedbackValueError
from promptlab.prompts.spec import RewardSpec
from promptlab.prompts.values import json_type

__all__ = ["DEFAULT_SCALE", "FeedbackValueError", "normalise_feedback", "scale_text"]


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
    :class:`FeedbackValueError`, whose message names the scale and whose ``scale`` holds it.
    """
    low, high = scale = _scale_of(spec)
    shown = scale_text(scale)
    if isinstance(value, bool):
        if scale != DEFAULT_SCALE:
            raise FeedbackValueError(f"expects a number on the scale {shown}, got a boolean", scale)
        return 1.0 if value else 0.0
    if not isinstance(value, int | float):
        raise FeedbackValueError(
            f"expects a boolean or a number on the scale {shown}, got {json_type(value)}", scale
        )
    try:
        number = float(value)
    except OverflowError:
        raise FeedbackValueError(
            f"too large a number; expects one on the scale {shown}", scale
        ) from None
    if not math.isfinite(number):
        raise FeedbackValueError(
            f"expects a finite number on the scale {shown}, got {number}", scale
        )
    if not low <= number <= high:
        hint = "" if scale != DEFAULT_SCALE else " (set [reward] scale = [min, max] for others)"
        raise FeedbackValueError(f"{number:g} is outside the scale {shown}{hint}", scale)
    return (number - low) / (high - low)
