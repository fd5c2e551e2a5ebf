"""Fitness as an experiment: each candidate runs on the lab's runner, over the cases.

:class:`ExperimentFitness` evaluates a batch of variants as the points of one
``run_experiment`` call (real model and judge calls, ``ExecutionCompleted`` events with
``source = offline``) and turns each point's figures into one number that stays
comparable across generations:

* every objective of the experiment is scored in 0..1: ``quality`` and
  ``success_rate`` as they are; any other metric ``m`` relative to the seed's value
  ``r``: ``r / (r + m)`` when minimised (0.5 at the seed's level, towards 1 as it falls),
  ``m / (r + m)`` when maximised;
* fitness is their weight-averaged score when every constraint holds, and that score
  minus 1 when one fails (so any feasible candidate beats every infeasible one, and the
  infeasible still have a gradient); ``-inf`` when no trial produced a quality.

The experiment report's own ``score`` is min-max normalised over the points of one run,
which would not compare a candidate of generation 1 with one of generation 5.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptlab.lab.budget import Budget
from promptlab.lab.client import ModelClient
from promptlab.lab.evaluators import build
from promptlab.lab.experiment import Experiment
from promptlab.lab.mutation.operators import FailingCase
from promptlab.lab.objectives import Constraint, Objective, value
from promptlab.lab.report import Report, build_report
from promptlab.lab.results import Trial
from promptlab.lab.runner import Point, Publish, RunResult, run_experiment
from promptlab.lab.search.candidates import Evaluation
from promptlab.prompts import VariantSpec

UNIT_METRICS = frozenset({"quality", "success_rate"})
"""Metrics already in 0..1, scored as they are."""


def objective_fitness(
    figures: Mapping[str, Any],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    reference: Mapping[str, Any],
) -> tuple[float, bool]:
    """``(fitness, feasible)`` of one point's figures; see the module docstring."""
    if figures.get("quality_mean") is None:
        return -math.inf, False
    total = sum(o.weight for o in objectives) or 1.0
    score = 0.0
    for obj in objectives:
        v = value(figures, obj.metric)
        if v is None:
            continue
        if obj.metric in UNIT_METRICS:
            term = float(v) if obj.direction == "maximize" else 1.0 - float(v)
        else:
            ref = value(reference, obj.metric)
            r = max(float(ref), 0.0) if ref is not None else float(v)
            v = max(float(v), 0.0)
            if r + v == 0:
                term = 1.0 if obj.direction == "minimize" else 0.0
            else:
                term = r / (r + v) if obj.direction == "minimize" else v / (r + v)
        score += obj.weight * term / total
    feasible = all(c.holds(figures) for c in constraints)
    return (score if feasible else score - 1.0), feasible


def failing_cases(experiment: Experiment, trials: Sequence[Trial]) -> list[FailingCase]:
    """Each case below its ``min_quality`` (or unscored), by its worst trial."""
    by_case: dict[str, list[Trial]] = defaultdict(list)
    for trial in trials:
        if not trial.success:
            by_case[trial.case].append(trial)
    cases = {c.id: c for c in experiment.cases}
    out = []
    for case_id, failed in by_case.items():
        worst = min(failed, key=lambda t: t.quality if t.quality is not None else -1.0)
        scores = {
            n: float(e["score"])
            for n, e in worst.evaluations.items()
            if isinstance(e.get("score"), int | float)
        }
        reasons = [
            str(e.get("reason") or e.get("error"))
            for e in worst.evaluations.values()
            if e.get("reason") or e.get("error")
        ]
        reasons += worst.eval_errors
        if worst.error_kind:
            reasons.append(f"call failed: {worst.error_kind}")
        case = cases.get(case_id)
        out.append(
            FailingCase(
                case_id=case_id,
                inputs=dict(case.inputs) if case else {},
                output=worst.output or None,
                expected=case.expected if case else None,
                quality=worst.quality if worst.quality is not None else 0.0,
                scores=scores,
                reasons=reasons,
            )
        )
    return out


@dataclass
class ExperimentFitness:
    """Runs candidates as points of ``experiment`` on ``model`` (see the module docstring)."""

    experiment: Experiment
    client: ModelClient
    model: str | None = None
    """Model every candidate runs on (default: the experiment's first, else the variant's)."""
    publish: Publish | None = None
    trials: dict[str, list[Trial]] = field(default_factory=dict)
    """Every trial run so far, by point label (for the final paired comparisons)."""
    reference: dict[str, Any] | None = None
    """The figures relative metrics are scored against: the first variant evaluated."""

    def __post_init__(self) -> None:
        if self.model is None and self.experiment.spec.models:
            self.model = self.experiment.spec.models[0]

    @property
    def calls_per_evaluation(self) -> int:
        """Model plus judge calls one candidate's evaluation makes."""
        panel = build(self.experiment.spec.evaluators, self.client)
        spec = self.experiment.spec
        return len(self.experiment.cases) * spec.repeats * (1 + panel.calls)

    def point(self, variant: VariantSpec) -> Point:
        return Point(
            variant, self.model or variant.model, {**variant.params, **self.experiment.spec.params}
        )

    async def evaluate(self, variants: Sequence[VariantSpec]) -> list[Evaluation]:
        points = [self.point(v) for v in variants]
        run: RunResult = await run_experiment(
            self.experiment, self.client, points=points, publish=self.publish, budget=Budget()
        )
        labelled: dict[str, list[Trial]] = defaultdict(list)
        for trial in run.trials:
            labelled[trial.point].append(trial)
        spec = self.experiment.spec
        out = []
        for point in points:
            trials = labelled.get(point.label, [])
            self.trials.setdefault(point.label, []).extend(trials)
            figures: dict[str, Any] = {}
            case_scores: dict[str, float] = {}
            if trials:
                result = run.report.point(point.label)
                figures = result.model_dump(
                    exclude={"per_case", "score", "feasible", "label", "params"}
                )
                case_scores = dict(result.per_case)
            if self.reference is None:
                self.reference = figures
            fitness, feasible = objective_fitness(
                figures, spec.objective_list(), spec.constraint_list(), self.reference
            )
            figures["feasible"] = feasible
            out.append(
                Evaluation(
                    fitness=fitness,
                    case_scores=case_scores,
                    failures=failing_cases(self.experiment, trials),
                    calls=sum(t.calls for t in trials),
                    spend_usd=sum(t.spend_usd for t in trials),
                    figures=figures,
                )
            )
        return out

    def comparison(self, variants: Sequence[VariantSpec]) -> Report:
        """The lab's report (paired tests, Holm) over the trials already run for ``variants``."""
        labels = [self.point(v).label for v in variants]
        trials = [t for label in labels for t in self.trials.get(label, [])]
        spec = self.experiment.spec
        return build_report(
            trials,
            experiment=self.experiment.id,
            prompt=self.experiment.prompt.id,
            objectives=spec.objective_list(),
            constraints=spec.constraint_list(),
            test=spec.test,
            alpha=spec.alpha,
            order=labels,
        )
