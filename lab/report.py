"""The report of an experiment: per-point figures, paired comparisons, best, Pareto front.

:func:`build_report` is a pure function of the trials and the experiment's settings, so
``experiment show`` rebuilds exactly the report ``experiment run`` printed.

Definitions (docs/lab.md repeats them):

* a point's *per-case mean* averages its repeats on one case (trials with a quality);
* ``quality_mean`` and ``quality_ci`` are the mean of the per-case means and its 95%
  interval over cases, inside [0, 1], made by ``quality_ci_method``
  (:mod:`lab.stats.intervals`); ``success_ci`` likewise for the per-case success shares;
  ``quality_std`` is the spread of single trials;
* comparisons pair two points on the cases both have (:mod:`lab.comparisons`): the test
  is chosen for the number of cases and named, Holm-corrected over all pairs;
  ``significant`` is ``p_holm < alpha``;
* ``best`` carries ``significant`` and ``lead``: its comparison with the runner-up (the
  feasible point of next highest score, else the other point of highest quality);
  ``detectable`` is the smallest difference in
  quality the experiment could detect.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from promptlab.lab import stats
from promptlab.lab.comparisons import Comparison, Detectable, Lead, compare, detectable, lead
from promptlab.lab.objectives import Constraint, Objective, constrained_best, pareto_front
from promptlab.lab.results import Trial


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class PointResult(_Model):
    """Figures of one (variant, model[, params]) point."""

    label: str
    variant: str
    model: str
    params: dict[str, Any] = {}
    n: int
    """Trials run (ok or not)."""
    n_scored: int
    """Trials with a quality (call ok, every evaluator answered)."""
    n_cases: int
    errors: int
    """Failed model calls."""
    error_rate: float
    eval_errors: int
    quality_mean: float | None
    quality_ci: tuple[float, float] | None
    quality_ci_method: str | None = None
    """How ``quality_ci`` was made: wilson, wilson (scores), bootstrap BCa (expanded)."""
    quality_std: float | None
    success_rate: float | None
    success_ci: tuple[float, float] | None = None
    """95% interval of the success rate over cases (per-case shares of successful trials)."""
    success_ci_method: str | None = None
    cost_usd_mean: float | None
    cost_usd_total: float
    eval_cost_usd: float
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    prompt_tokens_mean: float | None
    completion_tokens_mean: float | None
    tokens_mean: float | None
    score: float | None = None
    """Weighted objective score among the feasible points (None: infeasible)."""
    feasible: bool = True
    per_case: dict[str, float] = {}
    """Case id -> mean quality over its repeats."""


class Best(_Model):
    label: str
    variant: str
    model: str
    params: dict[str, Any] = {}
    score: float
    quality_mean: float | None
    success_rate: float | None
    success_ci: tuple[float, float] | None = None
    """95% interval of the success rate over cases (per-case shares of successful trials)."""
    success_ci_method: str | None = None
    cost_usd_mean: float | None
    latency_ms_p50: float | None
    reason: str
    significant: bool | None = None
    """Significantly ahead of the runner-up in quality (Holm); None: no runner-up."""
    lead: Lead | None = None
    """The paired comparison with the runner-up (the feasible point of next highest score,
    else the other point of highest quality)."""


class ParetoPoint(_Model):
    label: str
    variant: str
    model: str


class Report(_Model):
    """What an experiment found; ``model_dump()`` is the JSON report."""

    experiment: str
    prompt: str
    results: list[PointResult]
    comparisons: list[Comparison]
    best: Best | None
    best_reason: str
    pareto: list[ParetoPoint]
    objectives: dict[str, dict[str, Any]]
    constraints: list[str]
    calls: int
    spend_usd: float
    trials: int
    planned: int
    stopped_by_budget: bool
    alpha: float
    test: str = "auto"
    """What the experiment asked for: auto, permutation, t or wilcoxon."""
    detectable: Detectable | None = None
    """The smallest quality difference this experiment could detect (80% power)."""

    def point(self, label: str) -> PointResult:
        return next(r for r in self.results if r.label == label)

    def case_scores(self, label: str) -> dict[str, float]:
        """Per-case mean quality of one point (for reflective mutation and plots)."""
        return dict(self.point(label).per_case)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_markdown(self) -> str:
        from promptlab.lab.render import markdown

        return markdown(self)

    def to_frame(self) -> Any:
        """The per-point table as a pandas DataFrame (needs pandas installed)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError("to_frame() needs pandas: pip install pandas") from exc
        return pd.DataFrame([r.model_dump(exclude={"per_case"}) for r in self.results])


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def point_result(label: str, trials: Sequence[Trial]) -> PointResult:
    first = trials[0]
    ok = [t for t in trials if t.status == "ok"]
    scored = [t for t in ok if t.quality is not None]
    by_case: dict[str, list[float]] = defaultdict(list)
    for t in scored:
        by_case[t.case].append(float(t.quality))  # type: ignore[arg-type]
    per_case = {c: sum(v) / len(v) for c, v in sorted(by_case.items())}
    interval = stats.mean_interval(list(per_case.values()))
    successes = [t.success for t in scored]
    by_case_success: dict[str, list[bool]] = defaultdict(list)
    for t in scored:
        by_case_success[t.case].append(bool(t.success))
    success = stats.mean_interval([sum(v) / len(v) for v in by_case_success.values()])
    latencies = [t.latency_ms for t in ok]
    return PointResult(
        label=label,
        variant=first.variant,
        model=first.model,
        params=first.params,
        n=len(trials),
        n_scored=len(scored),
        n_cases=len(per_case),
        errors=len(trials) - len(ok),
        error_rate=(len(trials) - len(ok)) / len(trials),
        eval_errors=sum(1 for t in ok if t.eval_errors),
        quality_mean=interval.mean if interval is not None else None,
        quality_ci=interval.bounds if interval is not None else None,
        quality_ci_method=interval.method if interval is not None else None,
        quality_std=stats.sample_std([float(t.quality) for t in scored]),  # type: ignore[arg-type]
        success_rate=(sum(1 for s in successes if s) / len(successes)) if successes else None,
        success_ci=success.bounds if success is not None else None,
        success_ci_method=success.method if success is not None else None,
        cost_usd_mean=_mean([t.cost_usd for t in ok]),
        cost_usd_total=sum(t.cost_usd for t in trials),
        eval_cost_usd=sum(t.eval_cost_usd for t in trials),
        latency_ms_p50=stats.percentile(latencies, 50),
        latency_ms_p95=stats.percentile(latencies, 95),
        prompt_tokens_mean=_mean([t.prompt_tokens for t in ok]),
        completion_tokens_mean=_mean([t.completion_tokens for t in ok]),
        tokens_mean=_mean([t.prompt_tokens + t.completion_tokens for t in ok]),
        per_case=per_case,
    )


def build_report(
    trials: Sequence[Trial],
    *,
    experiment: str,
    prompt: str,
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    planned: int | None = None,
    stopped_by_budget: bool = False,
    test: stats.TestChoice = "auto",
    alpha: float = 0.05,
    order: Sequence[str] | None = None,
) -> Report:
    """The report of ``trials``; ``order`` lists point labels in display order."""
    grouped: dict[str, list[Trial]] = defaultdict(list)
    for t in trials:
        grouped[t.point].append(t)
    labels = [p for p in (order or []) if p in grouped] + sorted(
        p for p in grouped if p not in (order or [])
    )
    results = [point_result(label, grouped[label]) for label in labels]
    figures = [r.model_dump() for r in results]
    best_i, scores, why = constrained_best(figures, objectives, constraints)
    results = [
        r.model_copy(
            update={
                "score": None if math.isnan(s) else s,
                "feasible": not math.isnan(s),
            }
        )
        for r, s in zip(results, scores, strict=True)
    ]
    comparisons = compare({r.label: r.per_case for r in results}, test=test, alpha=alpha)
    best = None
    if best_i is not None:
        r = results[best_i]
        runner_up = _runner_up(results, best_i)
        best_lead = lead(r.label, runner_up, comparisons, alpha)
        best = Best(
            label=r.label,
            variant=r.variant,
            model=r.model,
            params=r.params,
            score=float(r.score or 0.0),
            quality_mean=r.quality_mean,
            success_rate=r.success_rate,
            cost_usd_mean=r.cost_usd_mean,
            latency_ms_p50=r.latency_ms_p50,
            reason=why,
            significant=None if best_lead is None else best_lead.significant,
            lead=best_lead,
        )
    # Each call's latency and cost: their noise must not decide who is on the front.
    noise = [
        {
            "latency_ms": [t.latency_ms for t in grouped[r.label] if t.status == "ok"],
            "cost_usd": [t.cost_usd for t in grouped[r.label] if t.status == "ok"],
        }
        for r in results
    ]
    front = pareto_front(figures, samples=noise)
    calls = sum(t.calls for t in trials)
    return Report(
        experiment=experiment,
        prompt=prompt,
        results=results,
        comparisons=comparisons,
        best=best,
        best_reason=why,
        pareto=[
            ParetoPoint(label=results[i].label, variant=results[i].variant, model=results[i].model)
            for i in front
        ],
        objectives={o.metric: {"weight": o.weight, "direction": o.direction} for o in objectives},
        constraints=[str(c) for c in constraints],
        calls=calls,
        spend_usd=sum(t.spend_usd for t in trials),
        trials=len(trials),
        planned=planned if planned is not None else len(trials),
        stopped_by_budget=stopped_by_budget,
        alpha=alpha,
        test=test,
        detectable=detectable(comparisons, alpha),
    )


def _runner_up(results: Sequence[PointResult], best: int) -> str | None:
    """The feasible point of next highest score; without one, the best other quality.

    Ties go to the earlier point. Constraints are judged on mean figures, so a point that
    misses one is still the nearest alternative when no other point meets them.
    """
    others = [i for i, r in enumerate(results) if i != best and r.feasible and r.score is not None]
    if others:
        return results[max(others, key=lambda i: (results[i].score or 0.0, -i))].label
    scored = [i for i, r in enumerate(results) if i != best and r.quality_mean is not None]
    if not scored:
        return None
    return results[max(scored, key=lambda i: (results[i].quality_mean or 0.0, -i))].label
