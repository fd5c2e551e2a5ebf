"""Token and cost estimates: heuristic counts, LiteLLM's table, unknown models."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptlab.prompts import cost_per_token, estimate_cost, estimate_tokens


def bundled_table() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)))
    return json.loads((folder / "model_prices_and_context_window_backup.json").read_text())


@pytest.fixture(autouse=True)
def fresh_cost_cache() -> Iterator[None]:
    cost_per_token.cache_clear()
    yield
    cost_per_token.cache_clear()


def test_text_tokens_are_about_four_characters_each() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 4000, "openai/gpt-4o-mini") == 1000


def test_message_tokens_include_framing() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "x" * 40},
        {"role": "user", "content": [{"type": "text", "text": "y" * 8}, {"type": "image_url"}]},
        {"role": "user", "content": None, "name": "bob"},
    ]
    # 3 messages x 4 framing + 10 + 2 text tokens + 1 for the name + 3 reply priming
    assert estimate_tokens(messages) == 12 + 12 + 1 + 3
    assert estimate_tokens([]) == 0


def test_cost_per_token_reads_litellm_table() -> None:
    entry = bundled_table()["gpt-4o-mini"]
    expected = (entry["input_cost_per_token"], entry["output_cost_per_token"])
    assert cost_per_token("openai/gpt-4o-mini") == expected  # falls back to the bare name
    assert cost_per_token("gpt-4o-mini") == expected
    assert expected[0] > 0 and expected[1] > expected[0]


def test_provider_prefixed_entries_are_found_first() -> None:
    table = bundled_table()
    key = next(
        k
        for k, v in table.items()
        if k.startswith("groq/") and isinstance(v, dict) and v.get("input_cost_per_token")
    )
    assert cost_per_token(key) == (
        table[key]["input_cost_per_token"],
        table[key].get("output_cost_per_token") or 0.0,
    )


def test_unknown_and_simulated_models_have_no_price() -> None:
    assert cost_per_token("simulated/good") is None
    assert cost_per_token("simulated/gpt-4o-mini") is None  # never priced like the real one
    assert cost_per_token("acme/no-such-model-xyz") is None
    assert estimate_cost("simulated/good", 1000, 1000) == 0.0
    assert estimate_cost("acme/no-such-model-xyz", 10, 10) == 0.0


def test_estimate_cost_multiplies_prices() -> None:
    prices = cost_per_token("openai/gpt-4o-mini")
    assert prices is not None
    assert estimate_cost("openai/gpt-4o-mini", 1000, 500) == pytest.approx(
        1000 * prices[0] + 500 * prices[1]
    )


def test_an_imported_litellm_table_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    # When a provider already needed LiteLLM, its live table (which may hold models
    # registered at run time) is used instead of the file.
    fake = types.SimpleNamespace(
        model_cost={"custom/model": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}
    )
    monkeypatch.setitem(sys.modules, "litellm", fake)
    assert cost_per_token("custom/model") == (1e-6, 2e-6)


def test_cost_lookup_does_not_import_litellm() -> None:
    code = (
        "import sys, prompts\n"
        "assert prompts.cost_per_token('openai/gpt-4o-mini') is not None\n"
        "assert prompts.estimate_tokens([{'role': 'user', 'content': 'hi'}]) > 0\n"
        "print('litellm' in sys.modules, 'jinja2' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True"]
