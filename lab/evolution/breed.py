"""Breed one challenger: the lab's step that continuous breeding in the learner schedules.

:func:`breed_one` asks the mutator for one variant of the champion, validates it (the
bounds every template passes), refuses a near-duplicate of a variant already known, runs
it through the offline check (an experiment on held-out cases) and judges it with the
report's paired test against the champion: it may enter live traffic unless it is
significantly worse. The learner decides when to breed, for which prompt and with which
failures; it publishes the events. Nothing here touches the bus or the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptlab.lab.experiment import Experiment
from promptlab.lab.mutation import (
    FailingCase,
    MutantRejected,
    MutationRequest,
    MutatorError,
    Operator,
    validate_mutant,
)
from promptlab.lab.mutation.mutator import Mutator
from promptlab.lab.report import build_report
from promptlab.lab.results import Trial
from promptlab.lab.runner import Point
from promptlab.lab.search import Candidate, Evaluation, near_duplicate
from promptlab.prompts import PromptSpec, VariantSpec

RunTrials = Callable[[Experiment, VariantSpec], Awaitable[list[Trial]]]
"""Runs one variant through the offline check's experiment."""


@dataclass(frozen=True, slots=True)
class Bred:
    """What one attempt produced: a candidate with its offline check, or why none."""

    operator: Operator
    candidate: Candidate | None
    reason: str
    spend_usd: float
    check: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.candidate is not None and bool(self.check.get("passed"))


async def breed_one(
    *,
    prompt: PromptSpec,
    champion: VariantSpec,
    champion_trials: list[Trial],
    experiment: Experiment,
    mutator: Mutator,
    operator: Operator,
    other: VariantSpec | None,
    failures: Sequence[FailingCase],
    known: Iterable[VariantSpec],
    run_trials: RunTrials,
    alpha: float,
) -> Bred:
    """One mutant of ``champion`` by ``operator`` (``other`` the second parent of a
    crossover), checked offline against the champion's ``champion_trials``."""
    request = MutationRequest(
        operator=operator,
        parent=champion,
        prompt=prompt,
        other=other if operator == "crossover" else None,
        failures=list(failures),
    )
    try:
        mutation = await mutator.mutate(request)
    except MutatorError as exc:
        return Bred(operator, None, f"mutator failed: {exc}", 0.0)
    spend = mutation.cost_usd
    generation = (champion.generation or 0) + 1
    parents = [champion, *([request.other] if request.other is not None else [])]
    try:
        mutant = validate_mutant(
            prompt, parents, mutation.draft, name="mutant", strategy=operator, generation=generation
        )
    except MutantRejected as exc:
        return Bred(operator, None, f"invalid: {exc}", spend)
    mutant = mutant.model_copy(update={"name": f"evo-g{generation}-{mutant.version[:8]}"})
    twin = near_duplicate(mutant, known)
    if twin is not None:
        return Bred(operator, None, f"near-duplicate of {twin}", spend)
    mutant_trials = await run_trials(experiment, mutant)
    spend += sum(t.spend_usd for t in mutant_trials)
    check = offline_check(experiment, champion, mutant, champion_trials, mutant_trials, alpha)
    candidate = Candidate(
        variant=mutant,
        evaluation=Evaluation(fitness=float(check.get("mutant_quality") or 0.0)),
        parents=tuple(p.name for p in parents),
        strategy=operator,
        generation=generation,
        rationale=mutation.draft.rationale,
    )
    return Bred(operator, candidate, str(check["reason"]), spend, check)


def offline_check(
    experiment: Experiment,
    champion: VariantSpec,
    mutant: VariantSpec,
    champion_trials: list[Trial],
    mutant_trials: list[Trial],
    alpha: float,
) -> dict[str, Any]:
    """The paired comparison on the check's cases; ``passed`` unless significantly worse."""
    labels = [Point(v, v.model, dict(v.params)).label for v in (champion, mutant)]
    report = build_report(
        [*champion_trials, *mutant_trials],
        experiment=experiment.id,
        prompt=experiment.prompt.id,
        objectives=experiment.spec.objective_list(),
        constraints=[],
        alpha=alpha,
        order=labels,
    )
    qualities = {r.label: r.quality_mean for r in report.results}
    mutant_q, champion_q = qualities.get(labels[1]), qualities.get(labels[0])
    if mutant_q is None:
        return {
            "passed": False,
            "reason": "no scored trial in the offline check",
            "champion": champion.name,
            "mutant_quality": None,
        }
    cmp = report.comparisons[0] if report.comparisons else None
    worse = cmp is not None and cmp.significant and cmp.better == labels[0]
    diff = -cmp.mean_diff if cmp is not None else mutant_q - (champion_q or 0.0)
    p = cmp.p_value if cmp is not None else None
    reason = (
        f"significantly worse than {champion.name} (diff {diff:+.3f}, p={p:.4f})"
        if worse and p is not None
        else f"not significantly worse than {champion.name} (diff {diff:+.3f}"
        + (f", p={p:.4f})" if p is not None else ")")
    )
    return {
        "passed": not worse,
        "reason": reason,
        "champion": champion.name,
        "n": cmp.n if cmp is not None else 0,
        "mean_diff": diff,
        "p_value": p,
        "significant": bool(cmp.significant) if cmp is not None else False,
        "test": cmp.test if cmp is not None else None,
        "champion_quality": champion_q,
        "mutant_quality": mutant_q,
    }
