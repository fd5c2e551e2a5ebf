"""The evolution loop: breed, validate, evaluate, select, for G generations or a budget.

Pure orchestration over three interfaces: a :class:`~lab.mutation.Mutator`, a
:class:`~lab.search.candidates.Fitness` and a :class:`~lab.search.strategies.Search`.
Randomness comes only from ``numpy.random.default_rng(seed)``; the mutator and the
fitness may make calls, and every call and dollar is counted against the budget. A
mutant that fails validation or nearly duplicates a known candidate is rejected with its
reason and never evaluated; a mutator failure is recorded as such, never replaced by the
parent. ``on_candidate`` sees every candidate (the seed first) as soon as it is
evaluated: the CLI publishes it as a ``VariantRegistered`` event.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from promptlab.lab.mutation import (
    OPERATORS,
    MutantRejected,
    MutationRequest,
    Mutator,
    MutatorError,
    Operator,
    validate_mutant,
)
from promptlab.lab.search.candidates import Candidate, Fitness, Rejection
from promptlab.lab.search.diversity import DEFAULT_THRESHOLD, near_duplicate
from promptlab.lab.search.strategies import SEARCHES, Breeding, Search, make_search, pareto_front
from promptlab.prompts import PromptSpec, VariantSpec


@dataclass(frozen=True)
class EvolutionConfig:
    """How one search runs (``[evolution]`` of an experiment file, or the CLI's flags)."""

    generations: int = 5
    population: int = 4
    """Mutants bred per generation, and survivors kept by genetic selection."""
    operators: tuple[Operator, ...] = OPERATORS
    search: str = "genetic"
    max_calls: int | None = None
    """Mutator plus fitness calls, seed evaluation included."""
    budget_usd: float | None = None
    seed: int = 0
    diversity: float = DEFAULT_THRESHOLD
    """Similarity of normalised text above which a mutant is a duplicate."""
    best: int = 3
    """How many of the best candidates the result lists."""

    def __post_init__(self) -> None:
        problems = []
        if self.generations < 0:
            problems.append("generations must be >= 0")
        if self.population < 1:
            problems.append("population must be >= 1")
        if not self.operators:
            problems.append("at least one operator (strategy) is needed")
        if unknown := [op for op in self.operators if op not in OPERATORS]:
            problems.append(f"unknown strategies {unknown}; known: {', '.join(OPERATORS)}")
        if self.search not in SEARCHES:
            problems.append(f"unknown search {self.search!r}; one of {', '.join(SEARCHES)}")
        if self.max_calls is not None and self.max_calls < 1:
            problems.append("max_calls must be >= 1")
        if self.budget_usd is not None and self.budget_usd <= 0:
            problems.append("budget_usd must be > 0")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class GenerationStats:
    generation: int
    best: float
    """Best fitness found so far."""
    mean: float
    """Mean fitness of the population after selection (feasible candidates)."""
    calls: int
    """Calls made so far (cumulative)."""
    spend_usd: float
    """Spend so far (cumulative)."""
    bred: int
    rejected: int


@dataclass
class EvolutionResult:
    """Everything a run found: every candidate with its lineage, and why mutants failed."""

    prompt_id: str
    search: str
    seed: Candidate
    candidates: list[Candidate]
    """Every evaluated candidate, the seed first, in the order they were evaluated."""
    generations: list[GenerationStats] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    population: list[Candidate] = field(default_factory=list)
    """The survivors after the last generation."""
    calls: int = 0
    spend_usd: float = 0.0
    stopped_by_budget: bool = False
    best_k: int = 3

    def ranked(self) -> list[Candidate]:
        """Every candidate, best first (infeasible last)."""
        return sorted(
            self.candidates, key=lambda c: -c.fitness if math.isfinite(c.fitness) else math.inf
        )

    @property
    def best(self) -> list[Candidate]:
        """The best ``best_k`` bred candidates (the seed is reported on its own)."""
        return [c for c in self.ranked() if c.generation > 0][: self.best_k]

    @property
    def pareto(self) -> list[Candidate]:
        """Per-case Pareto front of every candidate."""
        return pareto_front(self.candidates)

    def lineage(self, name: str) -> list[Candidate]:
        """``name`` and its ancestors through first parents, back to the seed."""
        by_name = {c.name: c for c in self.candidates}
        chain: list[Candidate] = []
        current = by_name.get(name)
        while current is not None and current not in chain:
            chain.append(current)
            current = by_name.get(current.parents[0]) if current.parents else None
        return chain

    def to_json(self) -> dict[str, Any]:
        """The JSON report (``promptlab evolve --json``)."""

        def figure(c: Candidate) -> dict[str, Any]:
            return {
                "variant": c.name,
                "fitness": _finite(c.fitness),
                "system": c.variant.system,
                "template": c.variant.template,
                "version": c.variant.version,
                "parents": list(c.parents),
                "strategy": c.strategy,
                "generation": c.generation,
                "rationale": c.rationale,
                "figures": dict(c.evaluation.figures),
                "lineage": [a.name for a in self.lineage(c.name)],
            }

        return {
            "prompt": self.prompt_id,
            "search": self.search,
            "seed": {
                "variant": self.seed.name,
                "fitness": _finite(self.seed.fitness),
                "figures": dict(self.seed.evaluation.figures),
            },
            "best": [figure(c) for c in self.best],
            "generations": [
                {
                    "generation": g.generation,
                    "best": _finite(g.best),
                    "mean": _finite(g.mean),
                    "calls": g.calls,
                    "spend_usd": g.spend_usd,
                    "bred": g.bred,
                    "rejected": g.rejected,
                }
                for g in self.generations
            ],
            "rejected": [
                {
                    "generation": r.generation,
                    "strategy": r.strategy,
                    "parents": list(r.parents),
                    "kind": r.kind,
                    "reason": r.reason,
                }
                for r in self.rejected
            ],
            "pareto": [c.name for c in self.pareto],
            "candidates": [figure(c) for c in self.candidates],
            "calls": self.calls,
            "spend_usd": self.spend_usd,
            "stopped_by_budget": self.stopped_by_budget,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


OnCandidate = Callable[[Candidate], Awaitable[None]]
OnGeneration = Callable[[GenerationStats], None]


@dataclass
class _Budget:
    max_calls: int | None
    max_usd: float | None
    calls: int = 0
    spend: float = 0.0

    def calls_left(self) -> float:
        return math.inf if self.max_calls is None else self.max_calls - self.calls

    @property
    def exhausted(self) -> bool:
        return self.calls_left() <= 0 or (self.max_usd is not None and self.spend >= self.max_usd)

    def charge(self, calls: int, usd: float) -> None:
        self.calls += calls
        self.spend += usd


async def evolve(
    prompt: PromptSpec,
    seed: VariantSpec,
    *,
    fitness: Fitness,
    mutator: Mutator,
    config: EvolutionConfig,
    calls_per_evaluation: int = 0,
    on_candidate: OnCandidate | None = None,
    on_generation: OnGeneration | None = None,
) -> EvolutionResult:
    """Run the search from ``seed``; see the module docstring.

    ``calls_per_evaluation`` (the fitness's calls per variant, when known in advance)
    lets the loop breed no more mutants than ``max_calls`` can still evaluate.
    """
    rng = np.random.default_rng(config.seed)
    search: Search = make_search(config.search)
    budget = _Budget(config.max_calls, config.budget_usd)

    [seed_eval] = await fitness.evaluate([seed])
    budget.charge(seed_eval.calls, seed_eval.spend_usd)
    seed_candidate = Candidate(variant=seed, evaluation=seed_eval)
    if on_candidate is not None:
        await on_candidate(seed_candidate)
    result = EvolutionResult(
        prompt_id=prompt.id,
        search=search.name,
        seed=seed_candidate,
        candidates=[seed_candidate],
        population=[seed_candidate],
        best_k=config.best,
    )
    known: list[VariantSpec] = [*prompt.variants, seed]
    for generation in range(1, config.generations + 1):
        per_child = 1 + calls_per_evaluation
        n = config.population
        if budget.max_calls is not None:
            n = int(min(n, budget.calls_left() // per_child))
        if n <= 0 or budget.exhausted:
            result.stopped_by_budget = True
            break
        plans = search.plan(result.population, config.operators, n, rng)
        mutants, rejected = await _breed(prompt, plans, mutator, generation, known, config, budget)
        result.rejected += rejected
        offspring: list[Candidate] = []
        if mutants and not budget.exhausted:
            evaluations = await fitness.evaluate([v for v, _, _ in mutants])
            for (variant, plan, rationale), evaluation in zip(mutants, evaluations, strict=True):
                budget.charge(evaluation.calls, evaluation.spend_usd)
                candidate = Candidate(
                    variant=variant,
                    evaluation=evaluation,
                    parents=tuple(p.name for p in plan.parents),
                    strategy=plan.operator,
                    generation=generation,
                    rationale=rationale,
                )
                offspring.append(candidate)
                if on_candidate is not None:
                    await on_candidate(candidate)
        elif mutants:
            result.stopped_by_budget = True
        result.candidates += offspring
        result.population = search.select(
            result.population, offspring, config.population, generation, rng
        )
        feasible = [c.fitness for c in result.population if math.isfinite(c.fitness)]
        stats = GenerationStats(
            generation=generation,
            best=max((c.fitness for c in result.candidates), default=-math.inf),
            mean=float(np.mean(feasible)) if feasible else -math.inf,
            calls=budget.calls,
            spend_usd=round(budget.spend, 8),
            bred=len(offspring),
            rejected=len(rejected),
        )
        result.generations.append(stats)
        if on_generation is not None:
            on_generation(stats)
        if result.stopped_by_budget:
            break
    result.calls = budget.calls
    result.spend_usd = round(budget.spend, 8)
    return result


async def _breed(
    prompt: PromptSpec,
    plans: Sequence[Breeding],
    mutator: Mutator,
    generation: int,
    known: list[VariantSpec],
    config: EvolutionConfig,
    budget: _Budget,
) -> tuple[list[tuple[VariantSpec, Breeding, str]], list[Rejection]]:
    """Ask the mutator for every planned mutant at once; keep the valid, new ones."""

    async def one(plan: Breeding) -> Any:
        request = MutationRequest(
            operator=plan.operator,
            parent=plan.parents[0].variant,
            prompt=prompt,
            other=plan.parents[1].variant if len(plan.parents) > 1 else None,
            failures=plan.parents[0].evaluation.failures,
        )
        try:
            return await mutator.mutate(request)
        except MutatorError as exc:
            return exc

    answers = await asyncio.gather(*(one(plan) for plan in plans))
    mutants: list[tuple[VariantSpec, Breeding, str]] = []
    rejected: list[Rejection] = []
    for plan, answer in zip(plans, answers, strict=True):
        parents = tuple(p.name for p in plan.parents)
        if isinstance(answer, MutatorError):
            budget.charge(1, 0.0)
        else:
            budget.charge(answer.calls, answer.cost_usd)
        if isinstance(answer, MutatorError):
            rejected.append(
                Rejection(generation, plan.operator, parents, str(answer), kind="mutator_error")
            )
            continue
        try:
            variant = validate_mutant(
                prompt,
                [p.variant for p in plan.parents],
                answer.draft,
                name="mutant",
                strategy=plan.operator,
                generation=generation,
            )
        except MutantRejected as exc:
            rejected.append(
                Rejection(
                    generation, plan.operator, parents, str(exc), template=answer.draft.template
                )
            )
            continue
        variant = variant.model_copy(update={"name": f"evo-g{generation}-{variant.version[:8]}"})
        if (twin := near_duplicate(variant, known, config.diversity)) is not None:
            rejected.append(
                Rejection(
                    generation,
                    plan.operator,
                    parents,
                    f"near-duplicate of {twin}",
                    kind="duplicate",
                    template=variant.template,
                )
            )
            continue
        known.append(variant)
        mutants.append((variant, plan, answer.draft.rationale))
    return mutants, rejected
