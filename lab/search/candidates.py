"""What a search works on: candidates, their evaluation, and the fitness interface.

A fitness is anything with ``await evaluate(variants)``: the lab's experiment runner in
``promptlab evolve`` (weighted objectives under constraints), a pure function of the
prompt text in the benchmark. The search only reads the figures in :class:`Evaluation`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from promptlab.lab.mutation.operators import FailingCase
from promptlab.prompts import VariantSpec


@dataclass(frozen=True)
class Evaluation:
    """One variant's figures on the fitness's test cases."""

    fitness: float
    """Higher is better: the weighted objectives, or ``-inf`` when a constraint fails."""
    case_scores: Mapping[str, float] = field(default_factory=dict)
    """Quality per test case (repeats averaged): the per-case Pareto front reads these."""
    failures: Sequence[FailingCase] = ()
    """Cases below their ``min_quality``, for the ``reflect`` operator."""
    calls: int = 0
    """Model and judge calls the evaluation made."""
    spend_usd: float = 0.0
    figures: Mapping[str, Any] = field(default_factory=dict)
    """Whatever else the fitness reports (quality_mean, cost_usd_mean, latency_ms_p50...)."""


class Fitness(Protocol):
    """Evaluates variants of one prompt; called once per generation with the new ones."""

    async def evaluate(self, variants: Sequence[VariantSpec]) -> list[Evaluation]: ...


@dataclass(frozen=True)
class Candidate:
    """An evaluated variant with its lineage."""

    variant: VariantSpec
    evaluation: Evaluation
    parents: tuple[str, ...] = ()
    strategy: str = "seed"
    """The operator that bred it (``seed`` for the starting variant)."""
    generation: int = 0
    rationale: str = ""

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def fitness(self) -> float:
        return self.evaluation.fitness


@dataclass(frozen=True)
class Rejection:
    """A mutant that never became a candidate, and why."""

    generation: int
    strategy: str
    parents: tuple[str, ...]
    reason: str
    kind: str = "invalid"
    """``invalid`` (validation), ``duplicate`` (diversity) or ``mutator_error``."""
    template: str | None = None
