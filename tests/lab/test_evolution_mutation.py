"""Mutation: the mutator's instructions, its answer, and what makes a mutant invalid."""

from __future__ import annotations

import pytest

from promptlab.lab.mutation import (
    OPERATORS,
    FailingCase,
    InstructionsError,
    MutantDraft,
    MutantRejected,
    MutationRequest,
    MutatorError,
    build_messages,
    load_instructions,
    parse_answer,
    validate_mutant,
)
from promptlab.prompts import PromptSpec


@pytest.fixture
def prompt() -> PromptSpec:
    return PromptSpec(
        id="summarize",
        variables=[
            {"name": "code", "type": "string", "required": True},
            {"name": "style", "type": "string", "default": "short"},
        ],
        examples=[
            {
                "name": "add",
                "variables": {"code": "def add(a, b): ..."},
                "expected": "adds two numbers",
            }
        ],
        variants=[
            {"name": "v1", "model": "openai/gpt-4o-mini", "template": "Summarize: {{ code }}"},
            {
                "name": "v2",
                "model": "openai/gpt-4o-mini",
                "system": "You are terse.",
                "template": "In {{ style }} style: {{ code }}",
            },
        ],
    )


def draft(template: str, system: str | None = None) -> MutantDraft:
    return MutantDraft(system=system, template=template, rationale="r")


def test_shipped_instructions_cover_every_operator_and_are_versioned() -> None:
    instructions = load_instructions()
    assert instructions.version >= 1
    assert sorted(instructions.operators) == sorted(OPERATORS)
    assert all(instructions.instruction(op) for op in OPERATORS)


def test_instructions_missing_an_operator_are_refused(tmp_path) -> None:
    path = tmp_path / "mutator.toml"
    path.write_text('version = 1\nsystem = "x"\n[operators.rephrase]\ninstruction = "y"\n')
    with pytest.raises(InstructionsError, match="missing"):
        load_instructions(path)


def test_messages_carry_what_each_operator_needs(prompt: PromptSpec) -> None:
    instructions = load_instructions()
    v1, v2 = prompt.variants
    user = build_messages(MutationRequest("crossover", v1, prompt, other=v2), instructions)[1]
    assert "Summarize: {{ code }}" in user["content"]
    assert "In {{ style }} style" in user["content"]
    assert "code (string, required)" in user["content"]
    examples = build_messages(MutationRequest("add_examples", v1, prompt), instructions)[1]
    assert "adds two numbers" in examples["content"]
    failing = FailingCase(
        "add",
        {"code": "def add"},
        "it multiplies",
        "adds two numbers",
        0.1,
        {"judge": 0.1},
        ["the summary is wrong"],
    )
    reflect = build_messages(
        MutationRequest("reflect", v1, prompt, failures=[failing]), instructions
    )[1]["content"]
    assert "it multiplies" in reflect and "the summary is wrong" in reflect
    assert "judge=0.10" in reflect
    with pytest.raises(ValueError, match="second parent"):
        MutationRequest("crossover", v1, prompt)


@pytest.mark.parametrize(
    ("text", "system", "template", "rationale"),
    [
        (
            '{"system": "S2", "template": "T {{ code }}", "rationale": "why"}',
            "S2",
            "T {{ code }}",
            "why",
        ),
        ('```json\n{"template": "T {{ code }}"}\n```', "parent", "T {{ code }}", ""),
        (
            '{"system": null, "template": "T {{ code }}", "rationale": "r"}',
            None,
            "T {{ code }}",
            "r",
        ),
    ],
)
def test_answers_are_read_as_the_json_object_asked_for(
    text: str, system: str | None, template: str, rationale: str
) -> None:
    got = parse_answer(text, parent_system="parent")
    assert (got.system, got.template, got.rationale) == (system, template, rationale)


@pytest.mark.parametrize(
    "text",
    ["", "   ", None, '{"system": "x"}', '{"template": ""}', '{"template": "t", "system": 3}',
     "Explain {{ code }} briefly.", '["not", "an object"]',
     '{"template": "T {{ code }}", "rationale": 3}',
     '{"template": "T {{ code }}", "extra": "key"}',
     "[" * 100_000 + "]" * 100_000],
)  # fmt: skip
def test_unusable_answers_are_mutator_errors(text: str | None) -> None:
    with pytest.raises(MutatorError):
        parse_answer(text, parent_system=None)


def test_a_truncated_json_answer_is_refused_with_its_reason_not_taken_as_text() -> None:
    cut = '{"template": "BROKENJSON summary of {{ code }}", "rationale": "cut sh'
    with pytest.raises(MutatorError, match="not the JSON object asked for") as refused:
        parse_answer(cut, parent_system=None)
    assert "Unterminated string" in str(refused.value)


@pytest.mark.parametrize(
    ("mutant", "reason"),
    [
        (draft("Summarize the code."), "drops required variable(s) 'code'"),
        (draft("Summarize {{ code }} for {{ audience }}"), "undeclared variable(s) 'audience'"),
        (draft("Summarize {{ code }"), "template: line 1"),
        (draft("Summarize {% if %}{{ code }}"), "template: line 1"),
        (draft("{{ code }}", system="Ask the user for their password."), "forbidden word"),
        (draft("x" * 10_001 + "{{ code }}"), "characters, at most 10000"),
        # The bombs of an admin template are refused the same way, before any offline run.
        (
            draft("{% for a in range(100000) %}{% for b in range(100000) %}{{ code }}"
                  "{% endfor %}{% endfor %}"),
            "breaks a rendering bound",
        ),
        (draft("{{ '{:>200000000}'.format(code) }}"), "a format width or precision"),
        (draft("{{ code }}{{ '%300000000d'|format(1) }}"), "a printf width or precision"),
        (draft("{{ code }}{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"), "nested more than"),
    ],
)  # fmt: skip
def test_invalid_mutants_are_rejected_with_the_reason(
    prompt: PromptSpec, mutant: MutantDraft, reason: str
) -> None:
    with pytest.raises(MutantRejected) as info:
        validate_mutant(
            prompt, [prompt.variants[0]], mutant, name="m", strategy="rephrase", generation=1
        )
    assert reason in str(info.value)


def test_prompt_rules_apply_to_mutants(prompt: PromptSpec) -> None:
    constrained = prompt.model_copy(update={"constraints": {"max_tokens": 100}})
    parent = constrained.variants[0].model_copy(update={"params": {"max_tokens": 50}})
    ok = validate_mutant(
        constrained,
        [parent],
        draft("Briefly: {{ code }}"),
        name="m",
        strategy="simplify",
        generation=1,
    )
    assert ok.params == {"max_tokens": 50}
    too_many = constrained.model_copy(update={"constraints": {"max_tokens": 10}})
    with pytest.raises(MutantRejected, match=r"exceeds constraints\.max_tokens 10"):
        validate_mutant(
            too_many,
            [parent],
            draft("Briefly: {{ code }}"),
            name="m",
            strategy="simplify",
            generation=1,
        )


def test_a_valid_mutant_records_its_lineage(prompt: PromptSpec) -> None:
    v1, v2 = prompt.variants
    mutant = validate_mutant(
        prompt,
        [v1, v2],
        draft("Summarize in {{ style }}: {{ code }}"),
        name="m1",
        strategy="crossover",
        generation=2,
    )
    assert (mutant.origin, mutant.parent, mutant.parents) == ("mutation", "v1", ("v1", "v2"))
    assert (mutant.strategy, mutant.generation, mutant.model) == ("crossover", 2, v1.model)
    [event] = [e for e in prompt.with_variant(mutant).registered_events() if e.variant == "m1"]
    assert (event.origin, event.parents, event.generation) == ("mutation", ["v1", "v2"], 2)
