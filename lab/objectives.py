"""Objectives, constraints, the constrained best and the Pareto front.

A *point* is one (variant, model[, params]) combination with its figures, as a mapping
from metric name to value. Objective and constraint names are the short names of
:data:`METRICS` (``quality``, ``cost_usd``, ``latency_ms``, ...), each mapped to the
report figure it reads.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

METRICS: dict[str, str] = {
    "quality": "quality_mean",
    "success_rate": "success_rate",
    "cost_usd": "cost_usd_mean",
    "latency_ms": "latency_ms_p50",
    "latency_p95_ms": "latency_ms_p95",
    "tokens": "tokens_mean",
    "error_rate": "error_rate",
}
"""Objective/constraint name -> the report figure it reads."""

DEFAULT_DIRECTION: dict[str, Literal["maximize", "minimize"]] = {
    "quality": "maximize",
    "success_rate": "maximize",
}
"""Metrics that are better when larger; every other metric is minimised by default."""

PARETO_AXES: tuple[tuple[str, Literal["maximize", "minimize"]], ...] = (
    ("quality", "maximize"),
    ("cost_usd", "minimize"),
    ("latency_ms", "minimize"),
)
"""The axes of the Pareto front: quality, cost and latency."""

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
_CONSTRAINT = re.compile(r"^\s*(>=|<=|==|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True, slots=True)
class Objective:
    metric: str
    weight: float = 1.0
    direction: Literal["maximize", "minimize"] = "maximize"


@dataclass(frozen=True, slots=True)
class Constraint:
    """``metric op bound``, e.g. ``quality >= 0.85``."""

    metric: str
    op: str
    bound: float

    @classmethod
    def parse(cls, metric: str, text: str) -> Constraint:
        """Parse ``">= 0.85"``; raise ValueError naming what is wrong."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
        match = _CONSTRAINT.match(text)
        if match is None:
            raise ValueError(f"expected an operator and a number like '>= 0.85', got {text!r}")
        return cls(metric, match.group(1), float(match.group(2)))

    def holds(self, point: Mapping[str, float | None]) -> bool:
        value = point.get(METRICS[self.metric])
        return value is not None and _OPS[self.op](value, self.bound)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def value(point: Mapping[str, float | None], metric: str) -> float | None:
    return point.get(METRICS[metric])


def weighted_scores(
    points: Sequence[Mapping[str, float | None]], objectives: Sequence[Objective]
) -> list[float]:
    """Each point's weighted objective score in 0..1 (1 = best on every objective).

    Every objective is min-max normalised over ``points`` (best = 1, worst = 0; 1 for
    all when they are equal); a point missing a figure scores 0 on it. The score is the
    weight-averaged normalised value.
    """
    total_weight = sum(o.weight for o in objectives) or 1.0
    scores = [0.0] * len(points)
    for obj in objectives:
        values = [value(p, obj.metric) for p in points]
        present = [v for v in values if v is not None]
        if not present:
            continue
        lo, hi = min(present), max(present)
        for i, v in enumerate(values):
            if v is None:
                continue
            if hi == lo:
                norm = 1.0
            elif obj.direction == "maximize":
                norm = (v - lo) / (hi - lo)
            else:
                norm = (hi - v) / (hi - lo)
            scores[i] += obj.weight * norm / total_weight
    return scores


def constrained_best(
    points: Sequence[Mapping[str, float | None]],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
) -> tuple[int | None, list[float], str]:
    """Index of the best feasible point, every feasible point's score, and a reason.

    Scores are normalised over the feasible points only (an infeasible point must not
    stretch the scale). The index is None, with the reason, when no point is feasible.
    Ties go to the earlier point.
    """
    feasible = [i for i, p in enumerate(points) if all(c.holds(p) for c in constraints)]
    scores = [float("nan")] * len(points)
    if not feasible:
        if not points:
            return None, scores, "no results"
        failed = sorted({str(c) for p in points for c in constraints if not c.holds(p)})
        return None, scores, "no combination meets the constraints: " + "; ".join(failed)
    feasible_scores = weighted_scores([points[i] for i in feasible], objectives)
    for i, s in zip(feasible, feasible_scores, strict=True):
        scores[i] = s
    best = max(feasible, key=lambda i: (scores[i], -i))
    why = "highest weighted objective score"
    if constraints:
        why += " among combinations meeting " + ", ".join(map(str, constraints))
    return best, scores, why


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` on every axis and better on one (all maximised)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True)
    )


def pareto_front(
    points: Sequence[Mapping[str, float | None]],
    axes: Sequence[tuple[str, Literal["maximize", "minimize"]]] = PARETO_AXES,
) -> list[int]:
    """Indices of the points no other point dominates on ``axes`` (in input order).

    Points missing a figure on an axis take no part.
    """
    vectors: dict[int, list[float]] = {}
    for i, p in enumerate(points):
        vals = [value(p, metric) for metric, _ in axes]
        if any(v is None for v in vals):
            continue
        vectors[i] = [
            float(v) if d == "maximize" else -float(v)  # type: ignore[arg-type]
            for v, (_, d) in zip(vals, axes, strict=True)
        ]
    return [
        i
        for i, vec in vectors.items()
        if not any(dominates(other, vec) for j, other in vectors.items() if j != i)
    ]
