"""Sanity checks of a variant's model parameters (temperature, max_tokens, ...)."""

from __future__ import annotations

import json
import math
from typing import Any

from prompts.variables import json_type

# Sanity ranges of the common OpenAI-style parameters; other keys pass through as given
# (providers have many), but must still be JSON so they hash and travel in events.
_NUMBER_PARAMS: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_POSITIVE_INT_PARAMS = ("max_tokens", "max_completion_tokens", "n", "top_k")


def check_params(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems of a variant's model parameters, as ``(key, message)`` pairs."""
    problems: list[tuple[str, str]] = []
    for key, value in params.items():
        if key in _NUMBER_PARAMS:
            low, high = _NUMBER_PARAMS[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append((key, f"expected a number, got {json_type(value)}"))
            elif not (low <= value <= high) or math.isnan(value):
                problems.append((key, f"{value} is outside {low:g}..{high:g}"))
        elif key in _POSITIVE_INT_PARAMS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append((key, f"expected a positive integer, got {value!r}"))
        elif key == "stop":
            if not (
                isinstance(value, str)
                or (isinstance(value, list) and all(isinstance(s, str) for s in value))
            ):
                problems.append((key, "expected a string or a list of strings"))
        elif key in ("stream", "messages", "model"):
            problems.append((key, "is set per call by the sidecar, not by a variant"))
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            problems.append((key, f"{json_type(value)} is not a JSON value"))
    return problems
