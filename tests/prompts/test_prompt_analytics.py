"""Which variable values analytics may record: safe ones by default, strings by opt-in,
never credentials, arrays or objects; the author's prefix and suffix are not the value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from promptlab.prompts import PromptSpec, VariableSpec, load_prompt_file, validate_variables
from promptlab.prompts.analytics import MAX_VALUE_CHARS, ValuePicker, cut


def spec(*variables: dict[str, Any]) -> PromptSpec:
    names = " ".join(f"{{{{ {v['name']} }}}}" for v in variables)
    return PromptSpec.model_validate(
        {
            "id": "p",
            "variables": list(variables),
            "variants": [{"name": "v", "model": "simulated/good", "template": names}],
        }
    )


def recorded(prompt: PromptSpec, values: dict[str, Any]) -> dict[str, Any] | None:
    return prompt.value_picker(validate_variables(prompt, values))


def test_by_default_only_enums_booleans_and_numbers_are_recorded() -> None:
    prompt = spec(
        {"name": "question", "required": True},  # free text: never without opt-in
        {"name": "tone", "enum": ["formal", "casual"]},
        {"name": "strict", "type": "boolean"},
        {"name": "n", "type": "integer"},
        {"name": "temperature", "type": "number"},
        {"name": "tags", "type": "array"},
    )
    assert prompt.value_picker.names == ("tone", "strict", "n", "temperature")
    values = {
        "question": "my address is 1 Main St",
        "tone": "casual",
        "strict": False,
        "n": 3,
        "temperature": 0.5,
        "tags": ["a"],
    }
    assert recorded(prompt, values) == {
        "tone": "casual",
        "strict": False,
        "n": 3,
        "temperature": 0.5,
    }
    assert recorded(prompt, {"question": "only text"}) is None


def test_a_string_is_recorded_only_when_opted_in_and_without_the_authors_affixes() -> None:
    prompt = spec(
        {"name": "question"},
        {"name": "product", "analytics": True, "prefix": "Product: ", "suffix": "."},
        {"name": "n", "type": "integer", "analytics": False},  # opted out
    )
    assert prompt.value_picker.names == ("product",)
    assert validate_variables(prompt, {"product": "lamp"}) == {"product": "Product: lamp."}
    assert recorded(prompt, {"question": "hi", "product": "lamp", "n": 2}) == {"product": "lamp"}


def test_long_values_are_cut() -> None:
    assert cut("y" * 100) == "y" * MAX_VALUE_CHARS
    assert cut("short") == "short"


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ({"name": "api_key", "analytics": True}, "reads like a credential"),
        ({"name": "user_password", "analytics": True}, "reads like a credential"),
        ({"name": "items", "type": "array", "analytics": True}, "never recorded"),
        ({"name": "extra", "type": "object", "analytics": True}, "never recorded"),
    ],
)
def test_opting_in_what_is_never_recorded_is_refused(
    variable: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        VariableSpec.model_validate(variable)
    text = str(caught.value)
    assert "analytics: " in text and message in text


def test_a_number_named_like_a_credential_is_never_recorded() -> None:
    picker = ValuePicker(
        [
            VariableSpec(name="token", type="integer"),
            VariableSpec(name="max_tokens", type="integer"),
        ]
    )
    assert picker.names == ("max_tokens",)


def test_the_documented_prompt_file_opts_its_language_in() -> None:
    prompt = load_prompt_file(Path(__file__).parents[2] / "config" / "prompts" / "summarize.toml")
    assert prompt.value_picker.names == ("language",)
    assert recorded(prompt, {"code": "x = 1", "language": " Go "}) == {"language": "go"}
