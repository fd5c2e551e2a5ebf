"""Search: the strategies' choices, diversity, and the evolution loop on a simulated task."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from bench.evolution import Counter, SimulatedFitness, SimulatedMutator, simulated_prompt
from bench.evolution_task import CASES
from promptlab.lab.mutation import MutantDraft, Mutation, MutationRequest, MutatorError
from promptlab.lab.search import (
    SEARCHES,
    Candidate,
    Evaluation,
    EvolutionConfig,
    evolve,
    make_search,
    near_duplicate,
    pareto_front,
)
from promptlab.lab.search.strategies import Annealing, case_wins
from promptlab.prompts import VariantSpec


def variant(name: str, template: str = "{{ code }}") -> VariantSpec:
    return VariantSpec(name=name, model="simulated/m", template=f"{name} {template}")


def cand(name: str, fitness: float, **cases: float) -> Candidate:
    return Candidate(variant(name), Evaluation(fitness=fitness, case_scores=cases))


def test_pareto_front_keeps_every_candidate_best_on_some_case() -> None:
    a = cand("a", 0.6, x=1.0, y=0.2, z=0.5)
    b = cand("b", 0.5, x=0.1, y=0.9, z=0.5)
    c = cand("c", 0.55, x=0.9, y=0.8, z=0.5)  # best on no case alone, but ties on z
    d = cand("d", 0.4, x=0.0, y=0.0, z=0.1)
    assert case_wins([a, b, c, d]) == {"a": 2, "b": 2, "c": 1, "d": 0}
    assert [x.name for x in pareto_front([a, b, c, d])] == ["a", "b", "c"]
    infeasible = cand("e", -math.inf, x=1.0, y=1.0, z=1.0)
    assert "e" not in [x.name for x in pareto_front([a, b, infeasible])]


def test_hill_climbing_moves_only_on_a_strict_improvement() -> None:
    search = make_search("hill_climbing")
    rng = np.random.default_rng(0)
    current = cand("cur", 0.5)
    assert search.select([current], [cand("tie", 0.5)], 4, 1, rng) == [current]
    better = cand("up", 0.6)
    assert search.select([current], [cand("down", 0.4), better], 4, 1, rng) == [better]
    assert all(p.parents == (current,) for p in search.plan([current], ["crossover"], 3, rng))


def test_annealing_accepts_a_worse_point_at_the_boltzmann_rate() -> None:
    search = Annealing(t0=0.1, cooling=0.5)
    rng = np.random.default_rng(1)
    current, worse = cand("cur", 0.5), cand("worse", 0.45)
    runs = 4000
    accepted = sum(search.select([current], [worse], 1, 0, rng) == [worse] for _ in range(runs))
    assert accepted / runs == pytest.approx(math.exp(-0.05 / 0.1), abs=0.03)
    cold = sum(search.select([current], [worse], 1, 6, rng) == [worse] for _ in range(runs))
    assert cold / runs < 0.01  # T = 0.1 / 64: a 0.05 drop is almost never taken


def test_genetic_keeps_the_fittest_and_crosses_two_distinct_parents() -> None:
    search = make_search("genetic")
    rng = np.random.default_rng(2)
    pop = [cand(n, f) for n, f in [("a", 0.1), ("b", 0.9), ("c", 0.5)]]
    kids = [cand("k1", 0.7), cand("k2", 0.2)]
    assert [c.name for c in search.select(pop, kids, 3, 1, rng)] == ["b", "k1", "c"]
    plans = search.plan(pop, ["crossover"], 20, rng)
    assert all(len(p.parents) == 2 and p.parents[0] != p.parents[1] for p in plans)


def test_near_duplicates_are_found_by_normalised_text() -> None:
    a = VariantSpec(name="a", model="s/m", template="Summarize this code:  {{ code }}")
    b = VariantSpec(name="b", model="s/m", template="summarize this code {{ code }}!")
    c = VariantSpec(name="c", model="s/m", template="List the functions in {{ code }}")
    assert near_duplicate(b, [a], threshold=1.0) == "a"
    assert near_duplicate(c, [a], threshold=0.97) is None


@pytest.mark.parametrize("search", SEARCHES)
async def test_a_run_improves_fitness_and_replays_by_seed(search: str) -> None:
    prompt = simulated_prompt()

    async def run(seed: int) -> dict:
        counter = Counter()
        result = await evolve(
            prompt,
            prompt.champion,
            fitness=SimulatedFitness(counter),
            mutator=SimulatedMutator(counter, np.random.default_rng(seed)),
            config=EvolutionConfig(generations=8, population=4, search=search, seed=seed),
        )
        return result.to_json()

    report = await run(3)
    best = [g["best"] for g in report["generations"]]
    assert best == sorted(best)
    assert best[-1] >= report["seed"]["fitness"] + 0.5
    assert report["best"][0]["fitness"] == best[-1]
    assert report == await run(3)
    assert report != await run(4)


async def test_invalid_mutants_and_duplicates_are_rejected_with_reasons() -> None:
    prompt = simulated_prompt()
    counter = Counter()
    result = await evolve(
        prompt,
        prompt.champion,
        fitness=SimulatedFitness(counter),
        mutator=SimulatedMutator(counter, np.random.default_rng(0)),
        config=EvolutionConfig(generations=10, population=4, seed=0),
    )
    kinds = {r.kind for r in result.rejected}
    assert "invalid" in kinds
    dropped = [r for r in result.rejected if r.kind == "invalid"]
    assert all("drops required variable(s) 'code'" in r.reason for r in dropped)
    assert all(r.template is not None and "{{ code }}" not in r.template for r in dropped)
    evaluated = {c.variant.template for c in result.candidates}
    assert not any(r.template in evaluated for r in dropped)


@dataclass
class Scripted:
    """A mutator that answers from a script: a draft, or an error to raise."""

    answers: list[MutantDraft | MutatorError]
    seen: list[MutationRequest] = field(default_factory=list)

    async def mutate(self, request: MutationRequest) -> Mutation:
        self.seen.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, MutatorError):
            raise answer
        return Mutation(draft=answer, cost_usd=0.01)


@dataclass
class Lengthy:
    """Fitness = template length / 100, one call per variant (a fitness we can reason about)."""

    calls: int = 0

    async def evaluate(self, variants: Sequence[VariantSpec]) -> list[Evaluation]:
        self.calls += len(variants)
        return [
            Evaluation(fitness=len(v.template) / 100, calls=1, spend_usd=0.001) for v in variants
        ]


async def test_a_mutator_failure_is_reported_never_replaced_by_the_parent() -> None:
    prompt = simulated_prompt()
    mutator = Scripted([MutatorError("upstream 500"), MutantDraft(None, "Longer: {{ code }}")])
    result = await evolve(
        prompt,
        prompt.champion,
        fitness=Lengthy(),
        mutator=mutator,
        config=EvolutionConfig(generations=1, population=2, operators=("rephrase",)),
    )
    [failure] = result.rejected
    assert (failure.kind, failure.reason, failure.parents) == (
        "mutator_error",
        "upstream 500",
        ("seed",),
    )
    assert [c.variant.template for c in result.candidates] == [
        prompt.champion.template,
        "Longer: {{ code }}",
    ]
    assert result.calls == 1 + 2 + 1  # seed evaluation, two mutator calls, one evaluation
    assert result.spend_usd == pytest.approx(0.001 + 0.01 + 0.001)


async def test_the_run_stops_at_the_call_budget() -> None:
    prompt = simulated_prompt()
    counter = Counter()
    fitness = SimulatedFitness(counter)
    result = await evolve(
        prompt,
        prompt.champion,
        fitness=fitness,
        mutator=SimulatedMutator(counter, np.random.default_rng(0)),
        config=EvolutionConfig(generations=100, population=4, max_calls=100),
        calls_per_evaluation=len(CASES),
    )
    assert result.stopped_by_budget
    assert result.calls == counter.calls <= 100
    assert result.generations[-1].calls == result.calls


async def test_the_run_stops_at_the_spend_budget() -> None:
    prompt = simulated_prompt()
    drafts: list[MutantDraft | MutatorError] = [
        MutantDraft(None, "x" * i + " {{ code }}") for i in range(1, 40)
    ]
    result = await evolve(
        prompt,
        prompt.champion,
        fitness=Lengthy(),
        mutator=Scripted(drafts),
        config=EvolutionConfig(
            generations=50, population=2, operators=("elaborate",), budget_usd=0.05
        ),
    )
    assert result.stopped_by_budget
    assert result.spend_usd < 0.05 + 2 * 0.011  # at most one generation over
    assert len(result.generations) < 50


async def test_lineage_follows_first_parents_back_to_the_seed() -> None:
    prompt = simulated_prompt()
    drafts: list[MutantDraft | MutatorError] = [
        MutantDraft(None, "Summarize this code well: {{ code }}"),
        MutantDraft(None, "Summarize this code very well: {{ code }}"),
        MutantDraft(None, "Summarize this code very, very well: {{ code }}"),
    ]
    result = await evolve(
        prompt,
        prompt.champion,
        fitness=Lengthy(),
        mutator=Scripted(drafts),
        config=EvolutionConfig(
            generations=3, population=1, search="hill_climbing", operators=("elaborate",)
        ),
    )
    last = result.best[0]
    chain = result.lineage(last.name)
    assert [c.generation for c in chain] == [3, 2, 1, 0]
    assert chain[-1].name == "seed"
    assert all(c.parents == (p.name,) for c, p in itertools.pairwise(chain))
