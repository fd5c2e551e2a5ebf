"""The redactor: known keys, key-shaped strings and the operator's patterns, in text and
in nested values (captured variables); bad patterns are refused when settings load."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptlab.providers import Redactor
from promptlab.settings import SettingsError, load_settings

KEY = "kx-provider-0123456789"


def test_known_keys_key_shapes_and_patterns_are_redacted() -> None:
    redactor = Redactor([KEY], patterns=[r"\b\d{3}-\d{2}-\d{4}\b", r"ACME-[A-Z]+"])
    text = f"key {KEY}, token sk-abcdefgh12345, ssn 123-45-6789, project ACME-ZEUS, ok 12-34"
    assert redactor.redact(text) == "key ***, token ***, ssn ***, project ***, ok 12-34"


def test_nested_values_are_walked() -> None:
    redactor = Redactor([KEY], patterns=["secret-[a-z]+"])
    value = {
        "text": f"use {KEY}",
        "items": ["secret-plan", 3, True, None, {"inner": "secret-x"}],
        "secret-key": 1.5,
    }
    assert redactor.redact_value(value) == {
        "text": "use ***",
        "items": ["***", 3, True, None, {"inner": "***"}],
        "***": 1.5,
    }


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("ACME-(", "is not a regular expression"), ("x*", "matches the empty string")],
)
def test_bad_patterns_are_refused_when_settings_load(
    tmp_path: Path, pattern: str, message: str
) -> None:
    config = tmp_path / "promptlab.toml"
    config.write_text(f"[server]\nredact_patterns = [{pattern!r}]\n")
    with pytest.raises(SettingsError, match=message):
        load_settings(config)
