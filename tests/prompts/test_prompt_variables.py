"""Per-request variable validation: every rule, formatting, defaults, messages."""

from __future__ import annotations

from typing import Any

import pytest

from promptlab.prompts import PromptSpec, VariableError, validate_variables


def spec(*variables: dict[str, Any]) -> PromptSpec:
    names = " ".join(f"{{{{ {v['name']} }}}}" for v in variables) or "static"
    return PromptSpec.model_validate(
        {
            "id": "p",
            "variables": list(variables),
            "variants": [{"name": "v", "model": "simulated/good", "template": names}],
        }
    )


def rejects(prompt: PromptSpec, values: dict[str, Any]) -> VariableError:
    with pytest.raises(VariableError) as caught:
        validate_variables(prompt, values)
    return caught.value


def test_the_message_names_variable_and_rule() -> None:
    prompt = spec({"name": "code", "required": True, "max_length": 5000})
    error = rejects(prompt, {"code": "x" * 5001})
    assert str(error) == "variable 'code': max_length: 5001 characters, at most 5000 allowed"
    assert (error.variable, error.rule) == ("code", "max_length")
    assert isinstance(error, ValueError)


def test_required_variables() -> None:
    prompt = spec({"name": "code", "required": True})
    assert rejects(prompt, {}).rule == "required"
    assert rejects(prompt, {"code": None}).rule == "required"  # null counts as missing
    assert validate_variables(prompt, {"code": ""}) == {"code": ""}


def test_optional_variables_take_their_default_or_stay_out() -> None:
    prompt = spec(
        {"name": "lang", "default": "  Python ", "trim": True, "lower": True},
        {"name": "tone"},
    )
    assert validate_variables(prompt, {}) == {"lang": "python"}  # defaults are formatted too
    assert validate_variables(prompt, None) == {"lang": "python"}
    assert validate_variables(prompt, {"tone": "dry", "lang": None}) == {
        "tone": "dry",
        "lang": "python",
    }


def test_unknown_variables_are_rejected_with_the_declared_ones() -> None:
    error = rejects(spec({"name": "code"}, {"name": "lang"}), {"code": "x", "cdoe": "y"})
    assert (
        str(error) == "variable 'cdoe': unknown: not declared by this prompt (declared: code, lang)"
    )


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("string", ["", "x"], [1, 1.5, True, ["x"]]),
        ("number", [1, 2.5, -3], ["1", True, [1]]),
        ("integer", [1, -7, 4.0, 2.0**53], [1.5, "1", False, 1e30, 2.0**53 + 2]),
        ("boolean", [True, False], [0, 1, "true"]),
        ("array", [[], [1, "a"]], ["[]", {}, 1]),
        ("object", [{}, {"a": 1}], [[], "x", 2]),
    ],
)
def test_types_are_checked_without_coercion(kind: str, good: list[Any], bad: list[Any]) -> None:
    prompt = spec({"name": "x", "type": kind})
    for value in good:
        assert validate_variables(prompt, {"x": value}) == {"x": value}
    for value in bad:
        error = rejects(prompt, {"x": value})
        assert error.rule == "type" and f"expected {kind}" in error.message


def test_integral_floats_become_integers_and_tuples_lists() -> None:
    assert validate_variables(spec({"name": "n", "type": "integer"}), {"n": 4.0}) == {"n": 4}
    result = validate_variables(spec({"name": "a", "type": "array"}), {"a": (1, 2)})
    assert result == {"a": [1, 2]}


def test_length_rules_for_strings_arrays_and_objects() -> None:
    text = spec({"name": "x", "min_length": 2, "max_length": 3})
    assert validate_variables(text, {"x": "abc"}) == {"x": "abc"}
    assert (
        str(rejects(text, {"x": "a"}))
        == "variable 'x': min_length: 1 characters, at least 2 required"
    )
    items = spec({"name": "x", "type": "array", "max_length": 1})
    assert rejects(items, {"x": [1, 2]}).message == "2 items, at most 1 allowed"
    keys = spec({"name": "x", "type": "object", "min_length": 1})
    assert rejects(keys, {"x": {}}).message == "0 keys, at least 1 required"


def test_number_range() -> None:
    prompt = spec({"name": "n", "type": "number", "min": 0, "max": 1})
    assert validate_variables(prompt, {"n": 0}) == {"n": 0}
    assert validate_variables(prompt, {"n": 1}) == {"n": 1}
    assert rejects(prompt, {"n": -0.1}).rule == "minimum"
    assert str(rejects(prompt, {"n": 2})) == "variable 'n': maximum: 2 is above the maximum 1.0"


def test_pattern_and_enum() -> None:
    prompt = spec(
        {"name": "lang", "pattern": "^[a-z]+$"},
        {"name": "level", "type": "integer", "enum": [1, 2, 3]},
    )
    assert validate_variables(prompt, {"lang": "go", "level": 2}) == {"lang": "go", "level": 2}
    assert (
        str(rejects(prompt, {"lang": "Go"}))
        == "variable 'lang': pattern: does not match '^[a-z]+$'"
    )
    assert str(rejects(prompt, {"level": 4})) == "variable 'level': enum: 4 is not one of 1, 2, 3"


def test_formatting_runs_before_the_checks_and_prefix_suffix_after() -> None:
    prompt = spec(
        {"name": "code", "trim": True, "min_length": 1, "max_length": 5,
         "prefix": "```\n", "suffix": "\n```"},
        {"name": "lang", "format": {"trim": True, "upper": True}, "enum": ["PY", "GO"]},
        {"name": "title", "truncate": 4},
    )  # fmt: skip
    out = validate_variables(prompt, {"code": "  x=1  ", "lang": " py ", "title": "abcdefgh"})
    assert out == {"code": "```\nx=1\n```", "lang": "PY", "title": "abcd"}
    assert rejects(prompt, {"code": "    "}).rule == "min_length"  # blank after trim


def test_truncation_keeps_long_values_within_max_length() -> None:
    prompt = spec({"name": "code", "truncate": 10, "max_length": 10})
    assert validate_variables(prompt, {"code": "x" * 50}) == {"code": "x" * 10}


def test_input_dict_is_not_modified() -> None:
    prompt = spec({"name": "code", "trim": True}, {"name": "lang", "default": "go"})
    values = {"code": " a "}
    validate_variables(prompt, values)
    assert values == {"code": " a "}
