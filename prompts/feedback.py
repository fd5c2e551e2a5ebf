"""What a feedback value means: ``[reward] scale`` maps it onto 0..1 (pure, no I/O).

``normalise_feedback(value, scale)`` is the one rule, used by the sidecar (to answer 400
at once) and by the learner (for feedback the sidecar could not check). A bool is 1 or
0 and only fits the default scale ``[0, 1]``; a number must lie on the scale, it is
never clipped (a 1..5 star rating sent to a 0..1 prompt is an error, not a 1.0).
"""

from __future__ import annotations

import math

DEFAULT_SCALE: tuple[float, float] = (0.0, 1.0)


class FeedbackValueError(ValueError):
    """A feedback value that does not fit the prompt's reward scale (or is no number)."""

    def __init__(self, message: str, scale: tuple[float, float]) -> None:
        super().__init__(message)
        self.scale = scale


def scale_text(scale: tuple[float, float]) -> str:
    low, high = scale
    return f"[{low:g}, {high:g}]"


def normalise_feedback(value: object, scale: tuple[float, float] | None = None) -> float:
    """``value`` mapped from ``scale`` (default ``[0, 1]``) onto 0..1.

    Raises :class:`FeedbackValueError` for a value that is not a bool or a finite
    number, a bool on a scale other than ``[0, 1]``, or a number off the scale.
    """
    low, high = scale or DEFAULT_SCALE
    shown = scale_text((low, high))
    if isinstance(value, bool):
        if (low, high) != DEFAULT_SCALE:
            raise FeedbackValueError(
                f"expects a number on the scale {shown}, got a boolean", (low, high)
            )
        return 1.0 if value else 0.0
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise FeedbackValueError(
            f"expects a boolean or a finite number on the scale {shown}, got {value!r}",
            (low, high),
        )
    number = float(value)
    if not low <= number <= high:
        raise FeedbackValueError(
            f"{number:g} is outside the scale {shown} of this prompt's reward", (low, high)
        )
    return (number - low) / (high - low)
