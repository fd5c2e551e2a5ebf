"""Search strategies: who breeds, with which operator, and who survives.

Each strategy is pure and seeded: it takes the current state and a
``numpy.random.Generator`` and returns a plan or a selection, with no I/O, so a run
replays identically from its seed.

* ``genetic``: tournament selection of parents (crossover of two), elitist survival of
  the ``population`` fittest;
* ``hill_climbing``: every child is a mutant of the best so far; move only on a strict
  improvement;
* ``annealing``: children of the current point; the best child replaces it when better,
  or with probability ``exp(delta / T)`` when worse, ``T = t0 * cooling ** generation``;
* ``pareto``: the per-case Pareto front (every candidate that is best on at least one
  test case) survives, and parents are sampled from it in proportion to the cases they
  win, so a prompt that is the only one to solve some case keeps breeding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import numpy as np

from promptlab.lab.mutation.operators import Operator
from promptlab.lab.search.candidates import Candidate

SearchName = Literal["genetic", "hill_climbing", "annealing", "pareto"]
SEARCHES: tuple[SearchName, ...] = get_args(SearchName)


@dataclass(frozen=True)
class Breeding:
    """One planned mutant: the operator and its parent(s)."""

    operator: Operator
    parents: tuple[Candidate, ...]


class Search(Protocol):
    @property
    def name(self) -> SearchName: ...

    def plan(
        self,
        population: Sequence[Candidate],
        operators: Sequence[Operator],
        n: int,
        rng: np.random.Generator,
    ) -> list[Breeding]: ...

    def select(
        self,
        population: Sequence[Candidate],
        offspring: Sequence[Candidate],
        size: int,
        generation: int,
        rng: np.random.Generator,
    ) -> list[Candidate]: ...


def _feasible(candidates: Sequence[Candidate]) -> list[Candidate]:
    ok = [c for c in candidates if math.isfinite(c.fitness)]
    return ok or list(candidates)


def _ranked(candidates: Sequence[Candidate]) -> list[Candidate]:
    # Stable: among equal fitness the earlier (older) candidate stays first.
    return sorted(candidates, key=lambda c: -c.fitness if math.isfinite(c.fitness) else math.inf)


def _pick_operator(
    operators: Sequence[Operator], rng: np.random.Generator, *, can_cross: bool
) -> Operator:
    usable = [op for op in operators if can_cross or op != "crossover"]
    if not usable:  # only crossover asked for and a single parent: rephrase instead
        return "rephrase"
    return usable[int(rng.integers(len(usable)))]


def _breed_from(
    pool: Sequence[Candidate],
    operators: Sequence[Operator],
    n: int,
    rng: np.random.Generator,
    pick: PickParent,
) -> list[Breeding]:
    plans = []
    for _ in range(n):
        operator = _pick_operator(operators, rng, can_cross=len(pool) > 1)
        first = pick(pool, rng)
        if operator == "crossover":
            others = [c for c in pool if c.name != first.name]
            plans.append(Breeding(operator, (first, pick(others, rng))))
        else:
            plans.append(Breeding(operator, (first,)))
    return plans


class PickParent(Protocol):
    def __call__(self, pool: Sequence[Candidate], rng: np.random.Generator) -> Candidate: ...


def _tournament(pool: Sequence[Candidate], rng: np.random.Generator) -> Candidate:
    a, b = (pool[int(i)] for i in rng.integers(len(pool), size=2))
    return _ranked([a, b])[0]


@dataclass(frozen=True)
class Genetic:
    name: SearchName = "genetic"

    def plan(
        self,
        population: Sequence[Candidate],
        operators: Sequence[Operator],
        n: int,
        rng: np.random.Generator,
    ) -> list[Breeding]:
        return _breed_from(_feasible(population), operators, n, rng, _tournament)

    def select(
        self,
        population: Sequence[Candidate],
        offspring: Sequence[Candidate],
        size: int,
        generation: int,
        rng: np.random.Generator,
    ) -> list[Candidate]:
        return _ranked([*population, *offspring])[:size]


@dataclass(frozen=True)
class HillClimbing:
    name: SearchName = "hill_climbing"

    def plan(
        self,
        population: Sequence[Candidate],
        operators: Sequence[Operator],
        n: int,
        rng: np.random.Generator,
    ) -> list[Breeding]:
        best = _ranked(population)[0]
        ops: list[Operator] = [op for op in operators if op != "crossover"] or ["rephrase"]
        return _breed_from([best], ops, n, rng, lambda pool, _rng: pool[0])

    def select(
        self,
        population: Sequence[Candidate],
        offspring: Sequence[Candidate],
        size: int,
        generation: int,
        rng: np.random.Generator,
    ) -> list[Candidate]:
        current = _ranked(population)[0]
        challengers = _ranked(offspring)
        if challengers and challengers[0].fitness > current.fitness:
            return [challengers[0]]
        return [current]


@dataclass(frozen=True)
class Annealing:
    name: SearchName = "annealing"
    t0: float = 0.05
    """Starting temperature, in fitness units (a 0.05 drop is accepted with p = 1/e)."""
    cooling: float = 0.7

    def temperature(self, generation: int) -> float:
        return self.t0 * self.cooling**generation

    def plan(
        self,
        population: Sequence[Candidate],
        operators: Sequence[Operator],
        n: int,
        rng: np.random.Generator,
    ) -> list[Breeding]:
        current = population[0]
        ops: list[Operator] = [op for op in operators if op != "crossover"] or ["rephrase"]
        return _breed_from([current], ops, n, rng, lambda pool, _rng: pool[0])

    def select(
        self,
        population: Sequence[Candidate],
        offspring: Sequence[Candidate],
        size: int,
        generation: int,
        rng: np.random.Generator,
    ) -> list[Candidate]:
        current = population[0]
        if not offspring:
            return [current]
        best = _ranked(offspring)[0]
        delta = best.fitness - current.fitness
        if not math.isfinite(best.fitness):
            return [current]
        if not math.isfinite(current.fitness) or delta >= 0:
            return [best]
        accept = rng.random() < math.exp(delta / max(self.temperature(generation), 1e-12))
        return [best] if accept else [current]


def case_wins(candidates: Sequence[Candidate]) -> dict[str, int]:
    """For each candidate, the number of test cases on which it has the top score."""
    wins = {c.name: 0 for c in candidates}
    cases = {case for c in candidates for case in c.evaluation.case_scores}
    for case in sorted(cases):
        scored = [(c.evaluation.case_scores[case], c.name) for c in candidates
                  if case in c.evaluation.case_scores]  # fmt: skip
        top = max(score for score, _ in scored)
        for score, name in scored:
            if score >= top - 1e-12:
                wins[name] += 1
    return wins


def pareto_front(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Every candidate that is best (ties included) on at least one test case."""
    pool = _feasible(candidates)
    wins = case_wins(pool)
    front = [c for c in pool if wins[c.name] > 0]
    return front or _ranked(pool)[:1]


@dataclass(frozen=True)
class Pareto:
    name: SearchName = "pareto"

    def plan(
        self,
        population: Sequence[Candidate],
        operators: Sequence[Operator],
        n: int,
        rng: np.random.Generator,
    ) -> list[Breeding]:
        front = pareto_front(population)
        wins = case_wins(front)

        def by_wins(pool: Sequence[Candidate], rng: np.random.Generator) -> Candidate:
            weights = np.array([max(wins.get(c.name, 0), 1) for c in pool], dtype=float)
            return pool[int(rng.choice(len(pool), p=weights / weights.sum()))]

        return _breed_from(front, operators, n, rng, by_wins)

    def select(
        self,
        population: Sequence[Candidate],
        offspring: Sequence[Candidate],
        size: int,
        generation: int,
        rng: np.random.Generator,
    ) -> list[Candidate]:
        return pareto_front([*population, *offspring])


def make_search(name: str) -> Search:
    """The strategy called ``name``; raise ``ValueError`` naming the known ones."""
    searches: dict[str, Search] = {
        "genetic": Genetic(),
        "hill_climbing": HillClimbing(),
        "annealing": Annealing(),
        "pareto": Pareto(),
    }
    try:
        return searches[name]
    except KeyError:
        raise ValueError(f"unknown search {name!r}; one of {', '.join(SEARCHES)}") from None
