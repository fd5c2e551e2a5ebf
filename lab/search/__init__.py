"""Searching prompt space: candidates, diversity, strategies and the evolution loop."""

from promptlab.lab.search.candidates import Candidate, Evaluation, Fitness, Rejection
from promptlab.lab.search.diversity import near_duplicate, normalised
from promptlab.lab.search.engine import EvolutionConfig, EvolutionResult, GenerationStats, evolve
from promptlab.lab.search.strategies import SEARCHES, Breeding, Search, make_search, pareto_front

__all__ = [
    "SEARCHES",
    "Breeding",
    "Candidate",
    "Evaluation",
    "EvolutionConfig",
    "EvolutionResult",
    "Fitness",
    "GenerationStats",
    "Rejection",
    "Search",
    "evolve",
    "make_search",
    "near_duplicate",
    "normalised",
    "pareto_front",
]
