"""PromptSpec and friends: the issue's shape, champion rules, versions, events."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from promptlab.events.models import VariantRegistered, decode, encode
from promptlab.prompts import (
    PromotionConfig,
    PromptSpec,
    VariableSpec,
    VariantSpec,
    load_prompt_file,
)


def prompt(**overrides: Any) -> PromptSpec:
    data: dict[str, Any] = {
        "id": "greet",
        "variables": [{"name": "who", "type": "string", "required": True}],
        "variants": [
            {"name": "a", "model": "simulated/good", "template": "Hello {{ who }}"},
            {"name": "b", "model": "simulated/bad", "template": "Hi {{ who }}"},
        ],
    }
    data.update(overrides)
    return PromptSpec.model_validate(data)


def test_the_issue_example_loads_as_shown(issue_file: Path) -> None:
    spec = load_prompt_file(issue_file)

    assert (spec.id, spec.description, spec.category) == (
        "summarize",
        "Summarize a code snippet",
        "code",
    )
    (code,) = spec.variables
    assert (code.name, code.type, code.required, code.max_length) == ("code", "string", True, 5000)
    assert spec.reward.feedback == "thumbs_up"
    assert (spec.routing.strategy, spec.routing.exploration_cap, spec.routing.sticky) == (
        "thompson",
        0.2,
        True,
    )
    assert [v.name for v in spec.variants] == ["v1_simple", "v2_structured"]
    assert spec.champion.name == "v1_simple"
    v2 = spec.variant("v2_structured")
    assert v2.system == "You are a senior engineer."
    assert v2.template == "Give the purpose, key logic and edge cases of:\n{{ code }}"
    assert v2.params == {"temperature": 0.2}
    assert v2.origin == "config" and not v2.champion


def test_promotion_overrides_apply_on_top_of_the_global_config(issue_file: Path) -> None:
    spec = load_prompt_file(issue_file)
    merged = spec.promotion_config(PromotionConfig(threshold=0.9, min_samples=50))
    assert merged.min_samples == 300  # the prompt's override wins
    assert merged.threshold == 0.9  # the rest comes from the global config
    assert prompt().promotion_config(PromotionConfig(min_samples=50)).min_samples == 50


def test_first_variant_is_champion_when_none_is_marked() -> None:
    spec = prompt()
    assert spec.champion.name == "a"
    assert [v.champion for v in spec.variants] == [True, False]


def test_a_marked_champion_is_kept() -> None:
    variants = [
        {"name": "a", "model": "simulated/good", "template": "x"},
        {"name": "b", "model": "simulated/good", "template": "y", "champion": True},
    ]
    spec = prompt(variables=[], variants=variants)
    assert spec.champion.name == "b"
    assert not spec.variant("a").champion


def test_two_champions_are_rejected() -> None:
    variants = [
        {"name": "a", "model": "simulated/good", "template": "x", "champion": True},
        {"name": "b", "model": "simulated/good", "template": "y", "champion": True},
    ]
    with pytest.raises(ValidationError, match=r"variants\[1\].champion: more than one champion"):
        prompt(variables=[], variants=variants)


def test_at_least_one_variant_and_unique_names() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        prompt(variants=[])
    twice = {"name": "a", "model": "simulated/good", "template": "x"}
    with pytest.raises(ValidationError, match="duplicate name 'a'"):
        prompt(variables=[], variants=[twice, twice])


def test_unknown_variant_name_says_which_exist() -> None:
    with pytest.raises(KeyError, match=r"no variant 'zzz' \(has: a, b\)"):
        prompt().variant("zzz")


def test_version_is_sha256_of_model_params_system_template() -> None:
    variant = VariantSpec(
        name="v",
        model="openai/gpt-4o-mini",
        template="T {{ x }}",
        system="S",
        params={"top_p": 1, "seed": 2},
    )
    content = json.dumps(
        {
            "model": "openai/gpt-4o-mini",
            "params": {"seed": 2, "top_p": 1},
            "system": "S",
            "template": "T {{ x }}",
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    assert variant.version == hashlib.sha256(content.encode()).hexdigest()[:16]
    assert len(variant.version) == 16


def test_version_changes_with_content_only() -> None:
    base = VariantSpec(
        name="v", model="openai/gpt-4o-mini", template="T", params={"temperature": 0.1}
    )
    same_content = [
        base.model_copy(update={"name": "renamed"}),
        base.model_copy(update={"champion": True}),
        base.model_copy(update={"origin": "mutation", "parent": "x", "strategy": "rephrase"}),
        VariantSpec(
            name="v", model="openai/gpt-4o-mini", template="T", params={"temperature": 0.1}
        ),
    ]
    assert {v.version for v in same_content} == {base.version}
    different = [
        base.model_copy(update={"template": "T2"}),
        base.model_copy(update={"system": "S"}),
        base.model_copy(update={"system": ""}),  # empty system message is not "no system"
        base.model_copy(update={"model": "openai/gpt-4o"}),
        base.model_copy(update={"params": {"temperature": 0.2}}),
    ]
    versions = {v.version for v in different}
    assert len(versions) == len(different) and base.version not in versions


def test_registered_events_describe_every_variant(issue_file: Path) -> None:
    spec = load_prompt_file(issue_file)
    events = spec.registered_events()

    assert [type(e) for e in events] == [VariantRegistered, VariantRegistered]
    first, second = events
    assert (first.prompt_id, first.variant, first.version, first.champion) == (
        "summarize",
        "v1_simple",
        spec.variants[0].version,
        True,
    )
    assert (second.system, second.params, second.champion, second.origin) == (
        "You are a senior engineer.",
        {"temperature": 0.2},
        False,
        "config",
    )
    assert second.template == spec.variants[1].template
    assert first.variables == [{"name": "code", "required": True, "max_length": 5000}]
    # Every replica announcing the same file publishes the same ids (deduplicated).
    assert [e.event_id for e in spec.registered_events()] == [e.event_id for e in events]
    assert first.event_id != second.event_id
    assert decode(encode(second)) == second


def test_with_variant_adds_and_replaces_without_moving_the_champion() -> None:
    spec = prompt()
    bred = VariantSpec(
        name="c", model="simulated/good", template="Hey {{ who }}!", champion=True,
        origin="mutation", parent="a", strategy="shorten",
    )  # fmt: skip
    grown = spec.with_variant(bred)
    assert [v.name for v in grown.variants] == ["a", "b", "c"]
    assert grown.champion.name == "a" and not grown.variant("c").champion
    assert grown.variant("c").parent == "a"
    assert [v.name for v in spec.variants] == ["a", "b"]  # the original is untouched

    edited = grown.with_variant(
        VariantSpec(name="a", model="simulated/good", template="Yo {{ who }}")
    )
    assert [v.name for v in edited.variants] == ["a", "b", "c"]
    assert edited.champion.template == "Yo {{ who }}"
    assert edited.variant("a").version != spec.variant("a").version


def test_with_variant_runs_every_rule() -> None:
    spec = prompt()
    with pytest.raises(ValidationError, match="undeclared variable 'whom'"):
        spec.with_variant(VariantSpec(name="c", model="simulated/good", template="{{ whom }}"))


def test_with_variant_keeps_variable_rules_and_examples() -> None:
    spec = prompt(
        variables=[
            {"name": "who", "type": "string", "min": None, "truncate": 3, "trim": True},
            {"name": "n", "type": "integer", "min": 1, "max": 9, "default": 2},
        ],
        examples=[{"name": "e", "variables": {"who": "x"}, "expected_output": "Hello x"}],
    )
    grown = spec.with_variant(VariantSpec(name="c", model="simulated/good", template="{{ who }}"))
    assert grown.variables == spec.variables
    assert grown.examples == spec.examples
    assert grown.examples[0].expected == "Hello x"


def test_variable_aliases_and_flat_formatting() -> None:
    flat = VariableSpec.model_validate(
        {
            "name": "n",
            "type": "string",
            "trim": True,
            "upper": True,
            "truncate": 10,
            "prefix": "<",
            "suffix": ">",
        }
    )
    nested = VariableSpec.model_validate(
        {"name": "n", "type": "string",
         "format": {"trim": True, "upper": True, "max_length": 10, "prefix": "<", "suffix": ">"}}
    )  # fmt: skip
    assert flat == nested
    assert flat.format.max_length == 10
    number = VariableSpec.model_validate({"name": "x", "type": "number", "min": 0, "max": 1})
    assert (number.minimum, number.maximum) == (0, 1)


def test_spec_is_frozen() -> None:
    spec = prompt()
    with pytest.raises(ValidationError):
        spec.id = "other"


def test_model_copy_validates_the_update() -> None:
    variant = VariantSpec(name="v", model="simulated/good", template="x")
    with pytest.raises(ValidationError, match="forbidden word 'password'"):
        variant.model_copy(update={"template": "tell me your password"})
    with pytest.raises(ValidationError, match=r"outside 0\.\.2"):
        variant.model_copy(update={"params": {"temperature": 7}})
    assert variant.model_copy() is variant
