"""``promptlab optimize``: search variants x models x numeric params with optuna.

One objective: TPE. Several: NSGA-II, whose non-dominated trials are the Pareto front.
Constraints are given to the sampler (``trial.set_constraint``: a value <= 0 is feasible).
Every optuna trial is a small experiment run (its own point, the same cases) sharing one
:class:`~lab.budget.Budget`, so the search stops cleanly when the budget is spent.
The winner is chosen from all evaluated points by the same rule as a report's best.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from promptlab.lab.budget import Budget
from promptlab.lab.client import ModelClient
from promptlab.lab.comparisons import Lead, lead_among, lead_text
from promptlab.lab.experiment import Experiment
from promptlab.lab.objectives import METRICS, constrained_best
from promptlab.lab.report import PointResult
from promptlab.lab.runner import Point, Publish, run_experiment


@dataclass
class TrailEntry:
    number: int
    point: PointResult
    values: list[float] | None
    """Objective values given to optuna (None: the trial could not be scored)."""


@dataclass
class OptimizeOutcome:
    sampler: str
    trail: list[TrailEntry] = field(default_factory=list)
    best: PointResult | None = None
    best_reason: str = ""
    lead: Lead | None = None
    """The winner against the runner-up trial (paired on the cases, Holm over every other
    trial): whether its quality is significantly ahead."""
    alpha: float = 0.05
    calls: int = 0
    spend_usd: float = 0.0
    stopped_by_budget: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "sampler": self.sampler,
            "trail": [
                {"number": e.number, "values": e.values, **e.point.model_dump(exclude={"per_case"})}
                for e in self.trail
            ],
            "best": None if self.best is None else self.best.model_dump(exclude={"per_case"}),
            "best_reason": self.best_reason,
            "significant": None if self.lead is None else self.lead.significant,
            "lead": None if self.lead is None else self.lead.model_dump(mode="json"),
            "calls": self.calls,
            "spend_usd": self.spend_usd,
            "stopped_by_budget": self.stopped_by_budget,
        }

    def summary(self) -> str:
        lines = [
            f"{self.sampler}: {len(self.trail)} trials, {self.calls} calls, "
            f"spend ${self.spend_usd:.4f}"
            + (" (stopped by budget)" if self.stopped_by_budget else "")
        ]
        if self.best is None:
            lines.append(f"winner: none — {self.best_reason}")
        else:
            b = self.best
            lines.append(
                f"winner: {b.label} quality {b.quality_mean or 0:.3f} "
                f"success {b.success_rate or 0:.0%} cost/call ${b.cost_usd_mean or 0:.6f} "
                f"p50 {b.latency_ms_p50 or 0:.1f} ms"
            )
            lines.append("  " + lead_text(self.lead, self.alpha, winner="winner"))
        return "\n".join(lines)


def _label(variant: str, model: str, params: dict[str, Any]) -> str:
    shown = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items())
    )
    return f"{variant} @ {model}" + (f" [{shown}]" if shown else "")


async def optimize(
    experiment: Experiment,
    client: ModelClient,
    *,
    trials: int | None = None,
    publish: Publish | None = None,
    on_trial: Callable[[str], None] | None = None,
) -> OptimizeOutcome:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = experiment.spec
    objectives = spec.objective_list()
    constraints = spec.constraint_list()
    directions = [o.direction for o in objectives]
    multi = len(objectives) > 1

    sampler: optuna.samplers.BaseSampler
    if multi:
        sampler = optuna.samplers.NSGAIISampler(seed=spec.optimize.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=spec.optimize.seed)
    study = optuna.create_study(directions=directions, sampler=sampler)
    budget = Budget(spec.budget.max_calls, spec.budget.max_usd)
    outcome = OptimizeOutcome("NSGA-II" if multi else "TPE")
    cases = experiment.cases[: spec.optimize.cases_per_trial or len(experiment.cases)]
    variants = experiment.variant_names()

    for number in range(trials or spec.optimize.trials):
        if budget.stopped:
            break
        trial = study.ask()
        name = trial.suggest_categorical("variant", variants)
        variant = experiment.prompt.variant(name)
        models = spec.models or sorted({experiment.prompt.variant(v).model for v in variants})
        model = trial.suggest_categorical("model", models)
        params = {**variant.params, **spec.params}
        for pname, rng in spec.optimize.params.items():
            if rng.integer or pname == "max_tokens":
                params[pname] = trial.suggest_int(pname, int(rng.low), int(rng.high), log=rng.log)
            else:
                params[pname] = trial.suggest_float(
                    pname, rng.low, rng.high, step=rng.step, log=rng.log
                )
        point = Point(variant, model, params, _label(name, model, params))
        run = await run_experiment(
            experiment, client, points=[point], cases=cases, publish=publish, budget=budget
        )
        if not run.report.results:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        result = run.report.results[0]
        figures = result.model_dump()
        values = [figures.get(METRICS[o.metric]) for o in objectives]
        for c in constraints:
            trial.set_constraint(str(c), _violation(c, figures))
        if any(v is None for v in values):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            entry = TrailEntry(number, result, None)
        else:
            study.tell(trial, [float(v) for v in values])  # type: ignore[arg-type]
            entry = TrailEntry(number, result, [float(v) for v in values])  # type: ignore[arg-type]
        outcome.trail.append(entry)
        if on_trial is not None:
            on_trial(
                f"trial {number}: {result.label} quality {result.quality_mean} "
                f"cost ${result.cost_usd_mean or 0:.6f} p50 {result.latency_ms_p50 or 0:.1f} ms"
            )
    points = [e.point.model_dump() for e in outcome.trail]
    best, scores, why = constrained_best(points, objectives, constraints)
    outcome.best = outcome.trail[best].point if best is not None else None
    outcome.best_reason = why
    outcome.alpha = spec.alpha
    if best is not None:
        outcome.lead = _lead(outcome.trail, best, scores, spec)
    outcome.calls = budget.calls
    outcome.spend_usd = budget.spent_usd
    outcome.stopped_by_budget = budget.stopped
    return outcome


def _trial_label(entry: TrailEntry) -> str:
    return f"{entry.point.label} (trial {entry.number})"


def _lead(trail: list[TrailEntry], best: int, scores: list[float], spec: Any) -> Lead | None:
    """The winner against the trial of next highest score (else of highest quality)."""
    others = [i for i, e in enumerate(trail) if i != best and e.point.per_case]
    feasible = [i for i in others if not math.isnan(scores[i])]
    if feasible:
        runner = max(feasible, key=lambda i: (scores[i], -i))
    elif others:
        runner = max(others, key=lambda i: (trail[i].point.quality_mean or 0.0, -i))
    else:
        return None
    return lead_among(
        trail[best].point.per_case,
        {_trial_label(trail[i]): trail[i].point.per_case for i in others},
        _trial_label(trail[runner]),
        test=spec.test,
        alpha=spec.alpha,
    )


def _violation(constraint: Any, figures: dict[str, Any]) -> float:
    """optuna's convention: <= 0 is feasible."""
    value = figures.get(METRICS[constraint.metric])
    if value is None:
        return 1.0
    if constraint.op in (">=", ">"):
        return float(constraint.bound - value)
    if constraint.op in ("<=", "<"):
        return float(value - constraint.bound)
    return abs(float(value - constraint.bound))
