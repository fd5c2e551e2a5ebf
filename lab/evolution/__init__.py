"""Evolution on the lab's runner: experiment-backed fitness and ``evolve_experiment``."""

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
    "EvolutionError",
    "EvolutionRun",
    "ExperimentFitness",
    "candidate_event",
    "evolve_experiment",
    "live_events",
    "objective_fitness",
    "resolve_spec",
    "seed_variant",
]
