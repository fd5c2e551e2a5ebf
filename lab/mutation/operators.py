"""The mutation operators and the messages that ask the mutator model for one mutant.

The instructions are data, not code: ``config/evolution/mutator.toml`` holds the system
message and one instruction per operator, with a ``version`` that a lineage records.
:func:`build_messages` turns a :class:`MutationRequest` (operator, parent, the prompt's
declarations, and what the operator needs: a second parent, examples, failing cases)
into the chat messages sent to the mutator.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from promptlab.prompts import ExampleSpec, PromptSpec, VariantSpec

Operator = Literal[
    "rephrase",
    "add_structure",
    "add_examples",
    "change_persona",
    "simplify",
    "elaborate",
    "add_constraints",
    "change_format",
    "crossover",
    "reflect",
]
OPERATORS: tuple[Operator, ...] = get_args(Operator)
"""Every operator, in the order they are documented."""

DEFAULT_INSTRUCTIONS = Path(str(files("promptlab").joinpath("config", "evolution", "mutator.toml")))
"""The shipped instructions (``config/evolution/mutator.toml``, package data of the wheel)."""

MAX_FAILURES_SHOWN = 5
"""Failing cases a ``reflect`` request shows the mutator (the worst first)."""
MAX_FIELD_CHARS = 1_500
"""Longest input, output or expected text quoted to the mutator; the rest is cut."""


class InstructionsError(ValueError):
    """The instructions file is missing, unreadable or incomplete."""


class OperatorInstruction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    instruction: str


class Instructions(BaseModel):
    """The mutator's instructions: a system message and one instruction per operator."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    """Bumped whenever the meaning of a text changes."""
    system: str
    operators: dict[str, OperatorInstruction]

    @model_validator(mode="after")
    def _every_operator(self) -> Instructions:
        missing = [op for op in OPERATORS if op not in self.operators]
        unknown = [op for op in self.operators if op not in OPERATORS]
        if missing or unknown:
            raise ValueError(
                f"operators missing: {missing or 'none'}; unknown: {unknown or 'none'}"
            )
        return self

    def instruction(self, operator: Operator) -> str:
        return self.operators[operator].instruction.strip()


def load_instructions(path: Path | str | None = None) -> Instructions:
    """Read and check an instructions file (default: the shipped one)."""
    path = Path(path) if path is not None else DEFAULT_INSTRUCTIONS
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return Instructions.model_validate(data)
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise InstructionsError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class FailingCase:
    """One test case a variant did badly on, as ``reflect`` shows it to the mutator."""

    case_id: str
    inputs: Mapping[str, Any]
    output: str | None
    expected: str | None
    quality: float
    scores: Mapping[str, float] = field(default_factory=dict)
    """Score per evaluator."""
    reasons: Sequence[str] = ()
    """The judge's reasons (and evaluation errors)."""


@dataclass(frozen=True)
class MutationRequest:
    """What one mutation needs: the operator, the parent(s) and the prompt's context."""

    operator: Operator
    parent: VariantSpec
    prompt: PromptSpec
    other: VariantSpec | None = None
    """The second parent (``crossover``)."""
    failures: Sequence[FailingCase] = ()
    """The parent's failing cases (``reflect``)."""

    def __post_init__(self) -> None:
        if self.operator == "crossover" and self.other is None:
            raise ValueError("crossover needs a second parent")
        if self.operator not in OPERATORS:
            raise ValueError(f"unknown operator {self.operator!r}; one of {', '.join(OPERATORS)}")


def build_messages(request: MutationRequest, instructions: Instructions) -> list[dict[str, str]]:
    """The chat messages asking the mutator for one mutant of ``request.parent``."""
    parts = [
        f"Instruction ({request.operator}): {instructions.instruction(request.operator)}",
        "Variables the template may use (required ones must stay):\n" + _variables(request.prompt),
        "Parent variant:\n" + _variant_json(request.parent),
    ]
    if request.operator == "crossover" and request.other is not None:
        parts.append("Second parent variant:\n" + _variant_json(request.other))
    if request.operator == "add_examples":
        parts.append("Examples of this prompt:\n" + _examples(request.prompt.examples))
    if request.operator == "reflect":
        parts.append("Failing test cases:\n" + _failures(request.failures))
    return [
        {"role": "system", "content": instructions.system.strip()},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def _variables(prompt: PromptSpec) -> str:
    if not prompt.variables:
        return "(none)"
    return "\n".join(
        f"- {v.name} ({v.type}{', required' if v.required else ''})" for v in prompt.variables
    )


def _variant_json(variant: VariantSpec) -> str:
    return json.dumps({"system": variant.system, "template": variant.template}, indent=2)


def _cut(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + " [...]"


def _examples(examples: Sequence[ExampleSpec]) -> str:
    if not examples:
        return "(the prompt has no examples: invent none, improve the instructions instead)"
    return "\n".join(
        f"- inputs: {_cut(e.variables)}\n  expected: {_cut(e.expected or '(not given)')}"
        for e in examples
    )


def _failures(failures: Sequence[FailingCase]) -> str:
    if not failures:
        return "(none recorded: improve what is most likely to fail)"
    worst = sorted(failures, key=lambda f: f.quality)[:MAX_FAILURES_SHOWN]
    lines = []
    for f in worst:
        scores = ", ".join(f"{k}={v:.2f}" for k, v in f.scores.items()) or "none"
        lines.append(
            f"- case {f.case_id}: quality {f.quality:.2f} (scores: {scores})\n"
            f"  inputs: {_cut(dict(f.inputs))}\n"
            f"  output: {_cut(f.output or '(no output)')}\n"
            f"  expected: {_cut(f.expected or '(not given)')}\n"
            f"  reasons: {_cut('; '.join(f.reasons) or '(none)')}"
        )
    return "\n".join(lines)
