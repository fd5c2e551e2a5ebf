"""Evolution on the lab's runner: experiment-backed fitness and ``evolve_experiment``."""

from promptlab.lab.evolution.breed import Bred, breed_one, offline_check
from promptlab.lab.evolution.fitness import ExperimentFitness, objective_fitness
from promptlab.lab.evolution.run import (
    EvolutionError,
    EvolutionRun,
    candidate_event,
    evolve_experiment,
    live_events,
    resolve_spec,
    seed_variant,
)

__all__ = [
    "Bred",
    "EvolutionError",
    "EvolutionRun",
    "ExperimentFitness",
    "breed_one",
    "candidate_event",
    "evolve_experiment",
    "live_events",
    "objective_fitness",
    "offline_check",
    "resolve_spec",
    "seed_variant",
]
