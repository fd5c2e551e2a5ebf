"""Feedback that means what it says, on SQLite and PostgreSQL: a reward scale, a
bounded wait for unknown executions, and a repeated-feedback policy; all independent
of where batch boundaries fall (replay identical)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from learner_factories import deliveries, execution, feedback, registered

from promptlab.events.models import BaseEvent
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.replay import compare
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.store import Store

STARS = {"greet": RewardRule(feedback="stars", scale=(1.0, 5.0))}
THUMBS = {"greet": RewardRule(feedback="thumbs_up")}


async def project(
    store: Store, events: Sequence[BaseEvent], batch: int, rules: Any, **kw: Any
) -> Projection:
    projection = Projection(store, consumer="learner", rewards=rules, **kw)
    await projection.load()
    items = deliveries(events)
    for i in range(0, len(items), batch):
        await projection.apply(items[i : i + batch])
    return projection


async def counters(store: Store) -> dict[str, int]:
    return {name: value for name, value in await store.dump(t.learner_counters)}


async def test_a_star_rating_maps_onto_the_scale_and_off_scale_values_are_refused(
    store: Store,
) -> None:
    events = [
        registered(champion=True),
        execution("x1"),
        feedback("x1", 5, name="stars"),
        execution("x2"),
        feedback("x2", 2, name="stars"),
        execution("x3"),
        feedback("x3", 7, name="stars"),  # off the scale: refused, not clipped to 1.0
        execution("x4"),
        feedback("x4", True, name="stars"),  # a bool on a 1..5 scale: refused
    ]
    await project(store, events, batch=3, rules=STARS)
    a = (await store.arm_totals("greet"))["a"]
    assert a.rewarded == 2
    assert a.reward_sum == pytest.approx(1.0 + 0.25)
    assert (await counters(store))["feedback_rejected"] == 2


@pytest.mark.parametrize(
    ("policy", "expected_sum", "expected_positive", "counter"),
    [("last", 0.0 + 1.0, 1, "feedback_replaced"), ("first", 1.0 + 0.0, 1, "feedback_ignored")],
)
async def test_a_repeated_feedback_replaces_or_is_ignored_by_policy(
    store: Store, policy: str, expected_sum: float, expected_positive: int, counter: str
) -> None:
    events = [
        registered(champion=True),
        execution("x1"),
        feedback("x1", True, seconds=2),
        feedback("x1", False, seconds=3),  # corrected: last -> 0, first -> 1
        feedback("x2", False, seconds=4),  # before its execution
        feedback("x2", True, seconds=5),  # corrected before the execution arrives
        execution("x2", seconds=6),
    ]
    await project(store, events, batch=2, rules=THUMBS, feedback_repeat=policy)
    a = (await store.arm_totals("greet"))["a"]
    assert (a.rewarded, a.positive) == (2, expected_positive)
    assert a.reward_sum == pytest.approx(expected_sum)
    assert (await counters(store))[counter] == 2
    rows = {r[0]: r for r in await store.dump(t.executions)}
    cols = [c.name for c in t.executions.columns]
    value = cols.index("feedback_value")
    assert rows["x1"][value] == (0.0 if policy == "last" else 1.0)
    assert rows["x2"][value] == (1.0 if policy == "last" else 0.0)


async def test_feedback_for_an_execution_that_never_comes_is_dropped_after_the_wait(
    store: Store,
) -> None:
    events = [
        registered(champion=True),
        feedback("ghost", True, seconds=10),
        feedback("late", True, seconds=20),
        execution("x1", seconds=50),
        execution("late", seconds=100),  # within the 100 s wait of its feedback (sent at 20)
        execution("x2", seconds=115),  # now 115 > 10 + 100: the ghost's feedback is dropped
        feedback("x3", True, seconds=116),
        execution("x3", seconds=300),  # now 300 > 116 + 100: too late to count
    ]
    await project(store, events, batch=2, rules=THUMBS, feedback_wait_s=100)
    a = (await store.arm_totals("greet"))["a"]
    assert a.rewarded == 1  # only "late"
    assert await store.dump(t.pending_feedback) == []
    assert (await counters(store))["feedback_dropped"] == 2


async def test_the_feedback_rules_do_not_depend_on_batch_boundaries(
    store: Store, make_store: Callable[[], Awaitable[Store]]
) -> None:
    events: list[BaseEvent] = [registered(champion=True), registered(variant="b")]
    for i in range(60):
        eid = f"x{i}"
        ex = execution(eid, variant="ab"[i % 2], seconds=i * 10)
        first = feedback(eid, 1 + i % 5, name="stars", seconds=i * 10 + 1)
        again = feedback(eid, 1 + (i * 3) % 5, name="stars", seconds=i * 10 + 2)
        if i % 7 == 0:  # feedback long before its execution: dropped after the wait
            events.extend([first, again])
            events.append(execution(eid, variant="ab"[i % 2], seconds=i * 10 + 500))
        elif i % 5 == 0:
            events.extend([first, ex, again])
        else:
            events.extend([ex, first, again, feedback(eid, 9, name="stars", seconds=i * 10 + 3)])
    options = {"rules": STARS, "feedback_wait_s": 120}
    await project(store, events, batch=len(events), **options)
    for batch in (1, 3, 17):
        other = await make_store()
        await project(other, events, batch=batch, **options)
        assert await compare(store, other) == [], f"batch size {batch}"
    assert (await counters(store))["feedback_dropped"] > 0


async def test_a_challenger_failure_answered_by_the_champion_is_the_challengers_failure(
    store: Store,
) -> None:
    from promptlab.events.models import ExecutionCompleted, RoutingInfo

    if "fell_back_to" not in ExecutionCompleted.model_fields:
        pytest.skip("ExecutionCompleted.fell_back_to arrives with the providers branch")
    failed = execution("c1", variant="b", status="error", fell_back_to="a")
    answer = execution(
        "c1-answer", variant="a", routing=RoutingInfo(probability=1.0, fallback_from="b")
    )
    events = [
        registered(champion=True),
        registered(variant="b"),
        execution("ok", variant="b"),
        feedback("ok", True),
        failed,
        answer,
        feedback("c1-answer", True),  # the user rates the champion's stand-in answer
    ]
    await project(store, events, batch=2, rules=THUMBS)
    totals = await store.arm_totals("greet")
    b, a = totals["b"], totals["a"]
    assert (b.executions, b.errors, b.rewarded, b.reward_sum) == (2, 1, 2, 1.0)  # 1 of 2
    assert (a.executions, a.rewarded) == (1, 0)  # not a routed draw of the champion
    assert (await counters(store))["fallback_failures"] == 1
