"""The report of an experiment: per-point figures, paired comparisons, best, Pareto front.

:func:`build_report` is a pure function of the trials and the experiment's settings, so
``experiment show`` rebuilds exactly the report ``experiment run`` printed.

Definitions (docs/lab.md repeats them):

* a point's *per-case mean* averages its repeats on one case (trials with a quality);
* ``quality_mean`` and ``quality_ci`` are the mean of the per-case means and its 95%
  Student-t interval over cases; ``quality_std`` is the spread of single trials;
* comparisons pair two points on the cases both have, by the paired t-test and the
  Wilcoxon signed-rank test on the per-case means, Holm-corrected over all pairs;
  ``significant`` is ``p_holm < alpha`` of the experiment's chosen test.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from promptlab.lab import stats
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
    quality_std: float | None
    success_rate: float | None
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


class Comparison(_Model):
    a: str
    b: str
    n: int
    """Paired cases."""
    mean_diff: float
    """Mean of a - b over the paired per-case means."""
    test: Literal["paired t", "wilcoxon"]
    p_value: float | None
    p_holm: float | None
    significant: bool
    better: str | None
    """The better point when the difference is significant."""
    t_p: float | None
    t_p_holm: float | None
    wilcoxon_p: float | None
    wilcoxon_p_holm: float | None


class Best(_Model):
    label: str
    variant: str
    model: str
    params: dict[str, Any] = {}
    score: float
    quality_mean: float | None
    success_rate: float | None
    cost_usd_mean: float | None
    latency_ms_p50: float | None
    reason: str


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
    ci = (
        (interval.low, interval.high)
        if interval is not None and interval.low is not None and interval.high is not None
        else None
    )
    successes = [t.success for t in scored]
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
        quality_ci=ci,
        quality_std=stats.sample_std([float(t.quality) for t in scored]),  # type: ignore[arg-type]
        success_rate=(sum(1 for s in successes if s) / len(successes)) if successes else None,
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


def compare(
    results: Sequence[PointResult], *, test: Literal["t", "wilcoxon"] = "t", alpha: float = 0.05
) -> list[Comparison]:
    """Every pair of points, paired on common cases, Holm-corrected per test family."""
    pairs = list(itertools.combinations(results, 2))
    tested = [stats.paired(a.per_case, b.per_case) for a, b in pairs]
    t_holm = stats.holm([r.t_p for r in tested])
    w_holm = stats.holm([r.wilcoxon_p for r in tested])
    out = []
    for (a, b), r, th, wh in zip(pairs, tested, t_holm, w_holm, strict=True):
        p, ph = (r.t_p, th) if test == "t" else (r.wilcoxon_p, wh)
        significant = ph is not None and ph < alpha
        better = (a.label if r.mean_diff > 0 else b.label) if significant else None
        out.append(
            Comparison(
                a=a.label,
                b=b.label,
                n=r.n,
                mean_diff=r.mean_diff,
                test="paired t" if test == "t" else "wilcoxon",
                p_value=p,
                p_holm=ph,
                significant=significant,
                better=better,
                t_p=r.t_p,
                t_p_holm=th,
                wilcoxon_p=r.wilcoxon_p,
                wilcoxon_p_holm=wh,
            )
        )
    return out


def build_report(
    trials: Sequence[Trial],
    *,
    experiment: str,
    prompt: str,
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    planned: int | None = None,
    stopped_by_budget: bool = False,
    test: Literal["t", "wilcoxon"] = "t",
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
    best = None
    if best_i is not None:
        r = results[best_i]
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
        comparisons=compare(results, test=test, alpha=alpha),
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
    )
