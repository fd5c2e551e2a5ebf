"""Token and cost estimates, cheap and offline.

Tokens are estimated at about four characters each (the usual rule of thumb for
English with GPT-style tokenizers) plus the per-message framing chat models add: good
enough to budget and to rank variants, never a bill. Prices come from LiteLLM's model
cost table, read once per model.

The sidecar calls these per request and must not import LiteLLM for OpenAI-compatible
upstreams (importing it costs seconds), so when LiteLLM is not imported yet the table is
read straight from the JSON file its package ships: the same data that
``LITELLM_LOCAL_MODEL_COST_MAP=True`` makes LiteLLM itself load.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

CHARS_PER_TOKEN = 4.0
"""Average characters per token assumed by :func:`estimate_tokens`."""
TOKENS_PER_MESSAGE = 4
"""Framing tokens per chat message (role and separators), as OpenAI documents."""
TOKENS_PER_REPLY = 3
"""Tokens that prime the assistant's reply in a chat request."""

_COST_FILE = "model_prices_and_context_window_backup.json"
_UNPRICED_PROVIDERS = frozenset({"simulated"})
"""Providers with no real price: never looked up."""


def _text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _content_text(content: Any) -> str:
    # OpenAI content may be a list of parts ({"type": "text", "text": ...}); only text
    # parts are counted, images and audio are priced differently anyway.
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return ""


def estimate_tokens(
    messages_or_text: str | Iterable[Mapping[str, Any]], model: str | None = None
) -> int:
    """Estimated tokens of a text, or of a chat request's messages.

    ``model`` is accepted so that callers need not change if a model-aware counter
    replaces the heuristic; today every model uses the same estimate.
    """
    if isinstance(messages_or_text, str):
        return _text_tokens(messages_or_text)
    total = 0
    for message in messages_or_text:
        total += TOKENS_PER_MESSAGE + _text_tokens(_content_text(message.get("content")))
        if message.get("name"):
            total += 1
    return total + TOKENS_PER_REPLY if total else 0


@cache
def _bundled_cost_table() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / _COST_FILE
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _cost_table() -> Mapping[str, Any]:
    litellm = sys.modules.get("litellm")
    if litellm is not None:
        # Already imported (a provider needed translation): its table may hold models
        # registered at run time, so it wins over the file.
        return getattr(litellm, "model_cost", None) or _bundled_cost_table()
    return _bundled_cost_table()


@cache
def cost_per_token(model: str) -> tuple[float, float] | None:
    """``(input, output)`` USD per token of ``model`` (``provider/model``), or None.

    Looks up ``provider/model`` first, then ``model`` alone, in LiteLLM's cost table.
    None for models without a known price, including every ``simulated/*`` model.
    """
    provider, _, bare = model.partition("/")
    if provider in _UNPRICED_PROVIDERS:
        return None
    table = _cost_table()
    for key in (model, bare) if bare else (model,):
        entry = table.get(key)
        if isinstance(entry, Mapping) and entry.get("input_cost_per_token") is not None:
            return (
                float(entry["input_cost_per_token"]),
                float(entry.get("output_cost_per_token") or 0.0),
            )
    return None


def estimate_cost(model: str, input_tokens: int, output_tokens: int) -> float:
    """USD cost of a call with these token counts; 0.0 when the price is unknown."""
    prices = cost_per_token(model)
    if prices is None:
        return 0.0
    return input_tokens * prices[0] + output_tokens * prices[1]
