"""A variant's model parameters: an allow-list of OpenAI chat-completion parameters.

Variants come from prompt files, the admin API and LLM-driven mutation, and their
params are sent with every routed call. Only parameters that shape the model's answer
are allowed: anything that could send the call (and the provider key) to another host
or change its headers (``api_base``, ``base_url``, ``extra_headers``, ``api_key`` ...)
is refused, and an unknown key (``temprature``) is a typo until proven otherwise.
"""

from __future__ import annotations

import difflib
import json
import math
from typing import Any

from promptlab.prompts.values import json_type

__all__ = ["ALLOWED_PARAMS", "check_params"]

# Sanity ranges of the numeric parameters.
_NUMBER_PARAMS: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_POSITIVE_INT_PARAMS = ("max_tokens", "max_completion_tokens", "n", "top_k")
_OTHER_PARAMS = (
    "stop", "seed", "logit_bias", "logprobs", "top_logprobs", "response_format", "tools",
    "tool_choice", "parallel_tool_calls", "reasoning_effort", "verbosity", "service_tier",
    "modalities", "audio", "prediction", "web_search_options", "metadata", "store", "user",
)  # fmt: skip

ALLOWED_PARAMS = frozenset((*_NUMBER_PARAMS, *_POSITIVE_INT_PARAMS, *_OTHER_PARAMS))
"""Every key a variant's ``params`` may hold."""

_PER_CALL = frozenset({"stream", "stream_options", "messages", "model"})
# Keys that point a call at another host, carry credentials or rewrite headers: named in
# the message so that nobody takes the refusal for a missing feature.
_REDIRECTING = frozenset(
    {"api_base", "base_url", "api_key", "api_version", "extra_headers", "headers",
     "extra_body", "extra_query", "organization", "custom_llm_provider", "proxy",
     "timeout", "deployment_id", "azure_ad_token", "aws_access_key_id", "vertex_credentials"}
)  # fmt: skip


def _unknown(key: str) -> str:
    close = difflib.get_close_matches(key, sorted(ALLOWED_PARAMS), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown model parameter{hint} (allowed: {', '.join(sorted(ALLOWED_PARAMS))})"


def _value_problem(key: str, value: Any) -> str | None:
    if key in _NUMBER_PARAMS:
        low, high = _NUMBER_PARAMS[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"expected a number, got {json_type(value)}"
        if math.isnan(value) or not (low <= value <= high):
            return f"{value} is outside {low:g}..{high:g}"
    elif key in _POSITIVE_INT_PARAMS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"expected a positive integer, got {value!r}"
    elif key == "stop" and not (
        isinstance(value, str)
        or (isinstance(value, list) and all(isinstance(s, str) for s in value))
    ):
        return "expected a string or a list of strings"
    return None


def check_params(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems of a variant's model parameters, as ``(key, message)`` pairs."""
    problems: list[tuple[str, str]] = []
    for key, value in params.items():
        if key in _PER_CALL:
            problems.append((key, "is set per call by the sidecar, not by a variant"))
            continue
        if key in _REDIRECTING or key.lower() in _REDIRECTING:
            problems.append(
                (key, "refused: a variant cannot choose where a call goes, its credentials "
                      "or its headers; configure providers in promptlab.toml")
            )  # fmt: skip
            continue
        if key not in ALLOWED_PARAMS:
            problems.append((key, _unknown(key)))
            continue
        if (problem := _value_problem(key, value)) is not None:
            problems.append((key, problem))
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            problems.append((key, f"{json_type(value)} is not a JSON value"))
    return problems
