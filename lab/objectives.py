"""Objectives, constraints, the constrained best and the Pareto front.

A *point* is one (variant, model[, params]) combination with its figures, as a mapping
from metric name to value. Objective and constraint names are the short names of
:data:`METRICS` (``quality``, ``cost_usd``, ``latency_ms``, ...), each mapped to the
report figure it reads.
"""

from __future__ import annotations

import math
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


Interval = tuple[float, float]
"""``(low, high)`` of a figure within its measurement noise."""

NOISE_LEVEL = 0.95
"""Confidence of the intervals inside which two latencies or costs count as equal."""


def median_interval(samples: Sequence[float], level: float = NOISE_LEVEL) -> Interval | None:
    """Distribution-free interval of the median: order statistics, binomial ranks.

    With ``n`` samples the interval is ``(x[j], x[n-1-j])`` for the largest ``j`` whose
    coverage is still ``level``; with few samples it is the whole range.
    """
    from scipy.stats import binom

    xs = sorted(samples)
    n = len(xs)
    if n == 0:
        return None
    # ppf: the smallest k with P(B <= k) >= (1 - level) / 2, so P(B <= k - 1) is below it
    # and x[k - 1] (0-based) is the lowest order statistic the interval may start at.
    j = max(int(binom.ppf((1 - level) / 2, n, 0.5)) - 1, 0)
    return xs[j], xs[n - 1 - j]


def mean_interval(samples: Sequence[float], level: float = NOISE_LEVEL) -> Interval | None:
    """Student-t interval of the mean (a point when every sample is equal)."""
    from scipy.stats import t

    n = len(samples)
    if n == 0:
        return None
    mean = sum(samples) / n
    if n == 1:
        return mean, mean
    sd = math.sqrt(sum((x - mean) ** 2 for x in samples) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


NOISY_AXES: dict[str, Callable[[Sequence[float]], Interval | None]] = {
    "latency_ms": median_interval,
    "cost_usd": mean_interval,
}
"""Pareto axes measured with noise, and the interval of the figure each reads (the p50
latency is a median, the cost a mean). Quality is compared as it is: the lab's paired
tests say whether a quality difference is significant."""


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` on every axis and better on one (all maximised)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True)
    )


def dominates_beyond_noise(a: Sequence[Interval], b: Sequence[Interval]) -> bool:
    """``a`` dominates ``b`` when every axis is an interval (all maximised): ``a`` is
    better on an axis only when its interval lies wholly above ``b``'s, and worse only
    when wholly below. Overlapping intervals are a tie, so noise decides nothing."""
    better = worse = False
    for (a_lo, a_hi), (b_lo, b_hi) in zip(a, b, strict=True):
        if a_lo > b_hi:
            better = True
        elif a_hi < b_lo:
            worse = True
    return better and not worse


def pareto_front(
    points: Sequence[Mapping[str, float | None]],
    axes: Sequence[tuple[str, Literal["maximize", "minimize"]]] = PARETO_AXES,
    samples: Sequence[Mapping[str, Sequence[float]]] | None = None,
) -> list[int]:
    """Indices of the points no other point dominates on ``axes`` (in input order).

    Points missing a figure on an axis take no part. With ``samples`` (per point, the
    raw measurements of the :data:`NOISY_AXES`: each call's latency and cost), a
    latency or cost difference counts only beyond its measurement noise (the figures'
    95% intervals do not overlap): two seeded runs of the same experiment then agree on
    the front although their latencies differ by jitter.
    """
    vectors: dict[int, list[Interval]] = {}
    for i, p in enumerate(points):
        vals = [value(p, metric) for metric, _ in axes]
        if any(v is None for v in vals):
            continue
        vector = []
        for v, (metric, direction) in zip(vals, axes, strict=True):
            interval = _interval(float(v), metric, samples[i] if samples else None)  # type: ignore[arg-type]
            low, high = interval
            vector.append((low, high) if direction == "maximize" else (-high, -low))
        vectors[i] = vector
    return [
        i
        for i, vec in vectors.items()
        if not any(dominates_beyond_noise(other, vec) for j, other in vectors.items() if j != i)
    ]


def _interval(
    figure: float, metric: str, samples: Mapping[str, Sequence[float]] | None
) -> Interval:
    """The figure's noise interval, kept around the figure itself (a point without samples)."""
    measured = samples.get(metric) if samples is not None else None
    interval = NOISY_AXES[metric](measured) if metric in NOISY_AXES and measured else None
    if interval is None:
        return figure, figure
    return min(interval[0], figure), max(interval[1], figure)
