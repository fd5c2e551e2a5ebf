"""Evolve an experiment's seed variant: the engine behind ``promptlab evolve`` and ``Lab.evolve``.

    run = await evolve_experiment(experiment, providers, publish=publisher.publish)

The mutator (``[evolution] mutator``) and the fitness (the experiment's weighted
objectives under its constraints, on its first model) both call models through the
lab's :class:`~lab.client.ModelClient`. The seed is the first variant the experiment
lists, or the prompt's champion when it lists none. Every bred candidate is published as
a ``VariantRegistered`` with ``origin = mutation``, its parents, strategy, generation and
``source = offline`` (recorded, never routed); :func:`live_events` turns winners into live
challengers. The best candidates are compared with the seed by the lab's paired tests on
the trials already run, so the comparison costs no extra call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from promptlab.events.models import VariantRegistered, deterministic_event_id
from promptlab.lab.client import ModelClient
from promptlab.lab.comparisons import Lead, lead
from promptlab.lab.evolution.fitness import ExperimentFitness
from promptlab.lab.experiment import Experiment
from promptlab.lab.mutation import LLMMutator, load_instructions
from promptlab.lab.report import Comparison, Report
from promptlab.lab.runner import Publish
from promptlab.lab.search import (
    Candidate,
    EvolutionConfig,
    EvolutionResult,
    GenerationStats,
    evolve,
)
from promptlab.lab.search.spec import EvolutionSpec
from promptlab.prompts import PromptSpec, VariantSpec


class EvolutionError(ValueError):
    """The evolution cannot start (no mutator, unknown seed variant...)."""


@dataclass
class EvolutionRun:
    """A finished search with the paired comparison of its best candidates to the seed."""

    result: EvolutionResult
    comparison: Report
    """The lab's report over the seed and the best candidates (their trials in the search)."""
    seed_label: str
    mutator: str
    instructions_version: int

    @property
    def best(self) -> list[Candidate]:
        return self.result.best

    @property
    def improved(self) -> bool:
        """Whether some bred candidate's fitness beats the seed's."""
        return any(c.fitness > self.result.seed.fitness for c in self.best)

    def versus_seed(self, candidate: Candidate) -> Comparison | None:
        """The paired comparison of ``candidate`` with the seed (Holm over all pairs)."""
        label = f"{candidate.name} @ "
        for c in self.comparison.comparisons:
            if {c.a, c.b} & {self.seed_label} and (c.a.startswith(label) or c.b.startswith(label)):
                return c
        return None

    def lead_over_seed(self, candidate: Candidate) -> Lead | None:
        """Whether ``candidate`` is significantly ahead of the seed in quality (Holm)."""
        cmp = self.versus_seed(candidate)
        if cmp is None:
            return None
        label = cmp.a if cmp.a != self.seed_label else cmp.b
        return lead(label, self.seed_label, [cmp], self.comparison.alpha)

    def to_json(self) -> dict[str, Any]:
        data = self.result.to_json()
        data["mutator"] = self.mutator
        data["instructions_version"] = self.instructions_version
        for row, candidate in zip(data["best"], self.best, strict=True):
            cmp = self.versus_seed(candidate)
            row["vs_seed"] = None if cmp is None else cmp.model_dump(mode="json")
            ahead = self.lead_over_seed(candidate)
            row["significant"] = None if ahead is None else ahead.significant
            row["lead"] = None if ahead is None else ahead.model_dump(mode="json")
        data["comparisons"] = [c.model_dump(mode="json") for c in self.comparison.comparisons]
        return data


def resolve_spec(experiment: Experiment, **overrides: Any) -> EvolutionSpec:
    """``[evolution]`` with the given keys replaced (None: keep the file's value)."""
    spec = experiment.spec.evolution
    updates = {k: v for k, v in overrides.items() if v is not None}
    return spec.model_validate({**spec.model_dump(), **updates}) if updates else spec


def seed_variant(experiment: Experiment) -> VariantSpec:
    """The first variant the experiment lists, or the prompt's champion."""
    if experiment.spec.variants:
        return experiment.prompt.variant(experiment.spec.variants[0])
    return experiment.prompt.champion


def candidate_event(
    prompt: PromptSpec,
    candidate: Candidate,
    *,
    search: str,
    source: Literal["live", "offline"],
    offline_check: dict[str, Any] | None = None,
) -> VariantRegistered:
    """The ``VariantRegistered`` of one bred candidate (ids are deterministic per source)."""
    v = candidate.variant
    # VariantSpec.to_event is the one mapping of a variant to its event; a bred
    # candidate adds its lineage, the search that found it and its offline check.
    return v.to_event(
        prompt.id,
        [x.model_dump(mode="json", exclude_defaults=True) for x in prompt.variables],
        event_id=deterministic_event_id("variant.registered", source, prompt.id, v.name, v.version),
        champion=False,
        origin="mutation",
        parent=candidate.parents[0] if candidate.parents else None,
        parents=list(candidate.parents),
        strategy=candidate.strategy,
        generation=candidate.generation,
        search=search,
        rationale=candidate.rationale or None,
        offline_check=offline_check,
        source=source,
    )


def live_events(run: EvolutionRun, prompt: PromptSpec) -> list[VariantRegistered]:
    """The best candidates as live challengers (``--register``), better than the seed only."""
    return [
        candidate_event(prompt, c, search=run.result.search, source="live")
        for c in run.best
        if c.fitness > run.result.seed.fitness
    ]


async def evolve_experiment(
    experiment: Experiment,
    client: ModelClient,
    *,
    spec: EvolutionSpec | None = None,
    publish: Publish | None = None,
    on_generation: Callable[[GenerationStats], None] | None = None,
) -> EvolutionRun:
    """Run the search the experiment's ``[evolution]`` (or ``spec``) describes."""
    spec = spec or experiment.spec.evolution
    if spec.mutator is None:
        raise EvolutionError("no mutator: set [evolution] mutator = 'provider/model' or --mutator")
    base = Path(experiment.source).parent if experiment.source else None
    instructions = load_instructions(spec.instructions_path(base))
    prompt = experiment.prompt
    seed = seed_variant(experiment)

    async def complete(model: str, body: dict[str, Any]) -> Any:
        return await client.complete(model, body)

    mutator = LLMMutator(
        complete=complete,
        model=spec.mutator,
        instructions=instructions,
        temperature=spec.temperature,
        json_mode=spec.json_mode,
    )
    fitness = ExperimentFitness(experiment, client, publish=publish)

    async def on_candidate(candidate: Candidate) -> None:
        if publish is None or candidate.generation == 0:
            return  # the seed is registered by its prompt file
        outcome = publish(candidate_event(prompt, candidate, search=spec.search, source="offline"))
        if inspect.isawaitable(outcome):
            await outcome

    budget = experiment.spec.budget
    config = EvolutionConfig(
        generations=spec.generations,
        population=spec.population,
        operators=tuple(spec.strategies),
        search=spec.search,
        max_calls=spec.max_calls or budget.max_calls,
        budget_usd=spec.budget_usd or budget.max_usd,
        seed=spec.seed,
        diversity=spec.diversity,
        best=spec.best,
    )
    result = await evolve(
        prompt,
        seed,
        fitness=fitness,
        mutator=mutator,
        config=config,
        calls_per_evaluation=fitness.calls_per_evaluation,
        on_candidate=on_candidate,
        on_generation=on_generation,
    )
    comparison = fitness.comparison([seed, *(c.variant for c in result.best)])
    return EvolutionRun(
        result=result,
        comparison=comparison,
        seed_label=fitness.point(seed).label,
        mutator=spec.mutator,
        instructions_version=instructions.version,
    )
