"""Prompts defined at run time: the projection takes their reward rule and promotion
overrides from ``PromptRegistered`` in stream order, keeps them across restarts, rebuilds
them identically in other batches, and lets a prompt file win (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from learner_factories import T0, at, deliveries, execution, feedback, registered
from sqlalchemy import select

from promptlab.events.models import BaseEvent, PromptRegistered
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.replay import compare
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.store import Store
from promptlab.prompts import PromptSpec, prompt_event

pytestmark = pytest.mark.asyncio


def definition(feedback_name: str, scale: list[float] | None = None, **extra: Any) -> PromptSpec:
    reward: dict[str, Any] = {"feedback": feedback_name}
    if scale is not None:
        reward["scale"] = scale
    return PromptSpec.model_validate(
        {
            "id": "greet",
            "variables": [{"name": "name"}],
            "reward": reward,
            "variants": [{"name": "a", "model": "simulated/echo", "template": "Hello {{ name }}"}],
            **extra,
        }
    )


def defined(spec: PromptSpec, seconds: float) -> PromptRegistered:
    return prompt_event(spec, actor="admin-api", occurred_at=at(seconds), event_id=f"def-{seconds}")


def stream() -> list[BaseEvent]:
    """Stars on 1..5 count until the definition switches the reward to thumbs_up."""
    return [
        defined(definition("stars", [1, 5]), 0),
        registered(variant="a", champion=True, origin="api"),
        execution("x1", seconds=1),
        feedback("x1", 5, name="stars", seconds=2),  # 1.0
        execution("x2", seconds=3),
        feedback("x2", True, name="thumbs_up", seconds=4),  # not the reward yet
        defined(definition("thumbs_up", promotion={"probation_samples": 7}), 5),
        execution("x3", seconds=6),
        feedback("x3", 3, name="stars", seconds=7),  # no longer the reward
        feedback("x2", True, name="thumbs_up", seconds=8),  # now it is (a repeat: last counts)
    ]


async def project(
    store: Store, events: list[BaseEvent], *, batch: int = 100, **kw: Any
) -> Projection:
    projection = Projection(store, consumer="learner", **kw)
    await projection.load()
    items = deliveries(events)
    for i in range(0, len(items), batch):
        await projection.apply(items[i : i + batch])
    return projection


async def rewards(store: Store) -> dict[str, float | None]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(select(t.executions.c.execution_id, t.executions.c.reward))
        return {r.execution_id: r.reward for r in rows}


async def test_reward_rule_follows_the_definition_in_stream_order(store: Store) -> None:
    projection = await project(store, stream())
    assert await rewards(store) == {"x1": 1.0, "x2": 1.0, "x3": None}
    assert projection.rule("greet").feedback == "thumbs_up"
    assert projection.promotion("greet").probation_samples == 7
    rows = await store.dump(t.prompt_definitions)
    assert len(rows) == 1 and rows[0][0] == "greet" and rows[0][1] == 7  # the latest one


async def test_a_restarted_projection_keeps_the_definitions(store: Store) -> None:
    events = stream()
    await project(store, events[:7])
    restarted = await project(store, [])  # a new process: loads the table
    assert restarted.rule("greet").feedback == "thumbs_up"
    await restarted.apply(deliveries(events[7:], start=8))
    assert await rewards(store) == {"x1": 1.0, "x2": 1.0, "x3": None}


async def test_rebuilt_identically_in_other_batches(
    store: Store, make_store: Callable[[], Awaitable[Store]]
) -> None:
    events = stream()
    await project(store, events, batch=100)
    other = await make_store()
    await project(other, events, batch=1)
    assert await compare(store, other) == []


async def test_a_prompt_file_wins_and_a_refused_definition_is_skipped(store: Store) -> None:
    bad = PromptRegistered(
        prompt_id="greet", version="x", spec={"id": "greet", "variants": []}, occurred_at=T0
    )
    events = [bad, *stream()]
    projection = await project(
        store, events, rewards={"greet": RewardRule(feedback="stars", scale=(1.0, 5.0))}
    )
    assert projection.position == len(events)
    assert projection.rule("greet").feedback == "stars"  # the file's rule, throughout
    assert await rewards(store) == {"x1": 1.0, "x2": None, "x3": 0.5}
