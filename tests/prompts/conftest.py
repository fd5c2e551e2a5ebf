"""Fixtures for the prompt kernel: the issue's prompt file and a helper to write files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

_ISSUE_TOML = """\
id = "summarize"
description = "Summarize a code snippet"
category = "code"
[[variables]]
name = "code"
type = "string"
required = true
max_length = 5000
[reward]
feedback = "thumbs_up"     # the feedback name that is the reward (bool or 0..1)
[routing]
strategy = "thompson"      # or "fixed" with weights
exploration_cap = 0.2      # at most this share of traffic goes to challengers
[promotion]                # optional; overrides [learner.promotion]
min_samples = 300
[[variants]]
name = "v1_simple"
model = "openai/gpt-4o-mini"
template = "Summarize this code: {{ code }}"   # the user message
champion = true
[[variants]]
name = "v2_structured"
model = "openai/gpt-4o-mini"
system = "You are a senior engineer."          # optional system message
template = "Give the purpose, key logic and edge cases of:\\n{{ code }}"
params = { temperature = 0.2 }
"""

WriteToml = Callable[[str, str], Path]


@pytest.fixture
def write_toml(tmp_path: Path) -> WriteToml:
    """Write ``text`` to ``tmp_path/name`` and return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def issue_toml() -> str:
    """The prompt file exactly as issue 2 shows it."""
    return _ISSUE_TOML


@pytest.fixture
def issue_file(write_toml: WriteToml, issue_toml: str) -> Path:
    """The issue's prompt file, written to ``tmp_path/summarize.toml``."""
    return write_toml("summarize.toml", issue_toml)
