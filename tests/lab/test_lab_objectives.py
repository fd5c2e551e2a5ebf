"""Constraints, the constrained best and the Pareto front on hand-made points."""

from __future__ import annotations

import random

import pytest

from promptlab.lab.objectives import (
    Constraint,
    Objective,
    constrained_best,
    median_interval,
    pareto_front,
)
from promptlab.lab.report import build_report, point_result
from promptlab.lab.results import Trial


def point(q: float | None, cost: float, lat: float) -> dict[str, float | None]:
    return {"quality_mean": q, "cost_usd_mean": cost, "latency_ms_p50": lat}


POINTS = [
    point(0.90, 0.010, 900.0),  # best quality, dear
    point(0.80, 0.002, 400.0),  # balanced
    point(0.70, 0.003, 500.0),  # dominated by the balanced one
    point(0.60, 0.001, 300.0),  # cheapest and fastest
]


def test_constraints_parse_and_hold() -> None:
    c = Constraint.parse("quality", ">= 0.85")
    assert (c.metric, c.op, c.bound) == ("quality", ">=", 0.85)
    assert c.holds(POINTS[0]) and not c.holds(POINTS[1])
    assert not c.holds(point(None, 0, 0))
    assert str(Constraint.parse("cost_usd", "<=5e-3")) == "cost_usd <= 0.005"


@pytest.mark.parametrize("text", ["0.8", ">= x", "=> 0.8", ""])
def test_a_malformed_constraint_says_what_is_wrong(text: str) -> None:
    with pytest.raises(ValueError, match="operator and a number"):
        Constraint.parse("quality", text)


def test_an_unknown_metric_is_named() -> None:
    with pytest.raises(ValueError, match="unknown metric 'speed'"):
        Constraint.parse("speed", ">= 1")


def test_pareto_front_drops_dominated_points() -> None:
    assert pareto_front(POINTS) == [0, 1, 3]
    assert pareto_front([*POINTS, point(None, 0.0, 0.0)]) == [0, 1, 3]


def test_constrained_best_normalises_over_feasible_points() -> None:
    objectives = [Objective("quality", 1.0, "maximize"), Objective("cost_usd", 1.0, "minimize")]
    constraints = [Constraint.parse("cost_usd", "<= 0.005")]
    best, scores, why = constrained_best(POINTS, objectives, constraints)
    # feasible: 1, 2, 3. quality 0.8/0.7/0.6 -> 1, .5, 0; cost .002/.003/.001 -> .5, 0, 1.
    assert scores[1] == pytest.approx(0.75)
    assert scores[2] == pytest.approx(0.25)
    assert scores[3] == pytest.approx(0.5)
    assert best == 1 and "cost_usd <= 0.005" in why
    assert scores[0] != scores[0]  # NaN: infeasible


def test_no_feasible_point_gives_none_and_the_failed_constraints() -> None:
    best, _, why = constrained_best(
        POINTS, [Objective("quality")], [Constraint.parse("quality", ">= 0.95")]
    )
    assert best is None and "quality >= 0.95" in why


# --------------------------------------------------------------------------- noise

PROFILES = {
    # label: (quality, cost per call, median latency ms, latency jitter ms)
    "best": (0.9, 0.002, 100.0, 5.0),
    "worse twin": (0.8, 0.002, 100.0, 5.0),  # as fast as "best": only jitter tells them apart
    "cheap": (0.6, 0.001, 300.0, 10.0),
    "fast": (0.7, 0.002, 40.0, 2.0),
}


def seeded_run(seed: int) -> list[Trial]:
    """A seeded experiment's trials: quality and cost replay, latency is the machine's."""
    rng = random.Random(seed)  # the machine's jitter differs between runs...
    same = random.Random(0)  # ...the answers' quality replays
    return [
        Trial(
            point=label,
            variant=label,
            version="v",
            model="simulated/m",
            params={},
            case=f"c{case}",
            repeat=0,
            execution_id=f"{label}-{case}",
            latency_ms=latency + rng.uniform(-jitter, jitter),
            cost_usd=cost,
            quality=quality + same.uniform(-0.05, 0.05),
        )
        for label, (quality, cost, latency, jitter) in PROFILES.items()
        for case in range(12)
    ]


def front_of(trials: list[Trial]) -> list[str]:
    report = build_report(
        trials,
        experiment="e",
        prompt="p",
        objectives=[Objective("quality", 1.0, "maximize")],
        constraints=[],
        order=list(PROFILES),
    )
    return [p.label for p in report.pareto]


def test_the_front_of_identical_seeded_runs_does_not_depend_on_latency_jitter() -> None:
    runs = [seeded_run(seed) for seed in range(30)]
    assert front_of(runs[0]) == ["best", "cheap", "fast"]  # the report's own front
    fronts, exact = set(), set()
    for trials in runs:
        figures = [
            point_result(label, [t for t in trials if t.point == label]) for label in PROFILES
        ]
        points = [f.model_dump() for f in figures]
        samples = [
            {"latency_ms": [t.latency_ms for t in trials if t.point == label],
             "cost_usd": [t.cost_usd for t in trials if t.point == label]}
            for label in PROFILES
        ]  # fmt: skip
        fronts.add(tuple(pareto_front(points, samples=samples)))
        exact.add(tuple(pareto_front(points)))
    assert fronts == {(0, 2, 3)}
    assert len(exact) > 1  # without the noise, jitter decides whether the twin is on it


def test_a_difference_beyond_the_noise_still_dominates() -> None:
    slow = {"latency_ms": [200.0, 210.0, 190.0, 205.0, 195.0, 200.0], "cost_usd": [0.002] * 6}
    quick = {"latency_ms": [100.0, 110.0, 90.0, 105.0, 95.0, 100.0], "cost_usd": [0.002] * 6}
    points = [point(0.8, 0.002, 200.0), point(0.8, 0.002, 100.0)]
    assert pareto_front(points, samples=[slow, quick]) == [1]
    # Overlapping latencies are a tie: neither dominates.
    near = {"latency_ms": [190.0, 215.0, 185.0, 205.0, 195.0, 200.0], "cost_usd": [0.002] * 6}
    points = [point(0.8, 0.002, 200.0), point(0.8, 0.002, 197.5)]
    assert pareto_front(points, samples=[slow, near]) == [0, 1]


def test_a_cost_within_its_noise_is_a_tie_and_an_exact_one_is_not() -> None:
    noisy = [
        {"latency_ms": [100.0] * 4, "cost_usd": c}
        for c in ([1.0, 3.0, 2.0, 2.0], [1.5, 2.5, 2.0, 2.2])
    ]
    points = [point(0.8, 2.0, 100.0), point(0.8, 2.05, 100.0)]
    assert pareto_front(points, samples=noisy) == [0, 1]
    exact = [{"latency_ms": [100.0] * 4, "cost_usd": [c] * 4} for c in (2.0, 2.05)]
    assert pareto_front(points, samples=exact) == [0]


@pytest.mark.parametrize("n", [1, 5, 6, 10, 20, 100])
def test_the_median_interval_uses_the_binomial_ranks(n: int) -> None:
    low, high = median_interval([float(x) for x in range(n)])
    expected = {1: (0, 0), 5: (0, 4), 6: (0, 5), 10: (1, 8), 20: (5, 14), 100: (39, 60)}[n]
    assert (low, high) == expected  # the textbook ranks for a 95% interval
