"""Constraints, the constrained best and the Pareto front on hand-made points."""

from __future__ import annotations

import pytest

from promptlab.lab.objectives import Constraint, Objective, constrained_best, pareto_front


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
