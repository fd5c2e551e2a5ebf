"""LLM-driven mutation of prompt variants: operators, the mutator's answer, validation."""

from promptlab.lab.mutation.answer import MutantDraft, MutatorError, parse_answer
from promptlab.lab.mutation.mutator import LLMMutator, Mutation, Mutator
from promptlab.lab.mutation.operators import (
    OPERATORS,
    FailingCase,
    Instructions,
    InstructionsError,
    MutationRequest,
    Operator,
    build_messages,
    load_instructions,
)
from promptlab.lab.mutation.validate import MutantRejected, validate_mutant

__all__ = [
    "OPERATORS",
    "FailingCase",
    "Instructions",
    "InstructionsError",
    "LLMMutator",
    "MutantDraft",
    "MutantRejected",
    "Mutation",
    "MutationRequest",
    "Mutator",
    "MutatorError",
    "Operator",
    "build_messages",
    "load_instructions",
    "parse_answer",
    "validate_mutant",
]
