"""Period analytics, in event time, against the previous period."""

from __future__ import annotations

from datetime import timedelta

import pytest
from learner_factories import deliveries, execution, feedback, registered

from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.storage.analytics import analytics
from promptlab.learner.storage.store import Store


async def test_period_figures_and_trend(store: Store) -> None:
    hour = 3600
    events = [registered(champion=True)]
    # Previous hour: 2 calls, one error, one thumbs down.
    events += [execution("p1", seconds=10, subject="u1"), feedback("p1", False, seconds=20)]
    events += [execution("p2", seconds=20, subject="u1", status="error", latency_ms=300.0)]
    # Current hour: 3 calls by 2 subjects, two thumbs up out of three rewards (one 0.4).
    events += [
        execution("c1", seconds=hour + 10, subject="u1"),
        feedback("c1", True, seconds=hour + 11),
    ]
    events += [
        execution("c2", seconds=hour + 20, subject="u2", cost_usd=0.004),
        feedback("c2", 0.4, seconds=hour + 21),
    ]
    events += [
        execution("c3", seconds=hour + 30, subject="u2"),
        feedback("c3", True, seconds=hour + 31),
    ]
    projection = Projection(store, consumer="learner", rewards={"greet": RewardRule("thumbs_up")})
    await projection.load()
    await projection.apply(deliveries(events))

    report = await analytics(store, prompt_id="greet", period=timedelta(hours=1))
    cur, prev = report.current, report.previous
    assert (cur.executions, cur.unique_subjects, prev.executions, prev.unique_subjects) == (
        3,
        2,
        2,
        1,
    )
    assert cur.quality_score == pytest.approx(0.8)
    assert cur.satisfaction == pytest.approx(2 / 3)
    assert (cur.success_rate, prev.error_rate) == (1.0, 0.5)
    assert cur.avg_cost_usd == pytest.approx(0.002)
    assert cur.avg_tokens == 30
    assert report.trends["executions"] == 1
    assert report.trends["quality_score"] == pytest.approx(0.8)
    assert report.to_dict()["current"]["executions"] == 3
