"""The projection, on SQLite and PostgreSQL: exactly once, joins, dead letters, commands."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from learner_factories import deliveries, execution, feedback, registered

from promptlab.events.bus import Delivery
from promptlab.events.models import (
    BaseEvent,
    CommandRejected,
    PauseCommand,
    PromoteCommand,
    RollbackCommand,
    VariantPromoted,
    VariantRolledBack,
)
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.replay import compare
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.store import Store
from promptlab.prompts.config import PromotionConfig

pytestmark = pytest.mark.asyncio

RULES = {"greet": RewardRule(feedback="thumbs_up")}


def traffic() -> list[BaseEvent]:
    """Two variants; b earns more thumbs up; some feedback late, some early."""
    events: list[BaseEvent] = [registered(variant="a", champion=True), registered(variant="b")]
    for i in range(40):
        variant = "a" if i % 2 else "b"
        ex = execution(
            f"x{i}",
            variant=variant,
            seconds=i * 7,
            latency_ms=50.0 + i,
            status="error" if i % 13 == 0 else "ok",
        )
        fb = feedback(
            f"x{i}", value=(i % 3 != 0) if variant == "b" else (i % 3 == 0), seconds=i * 7 + 3
        )
        events.extend([fb, ex] if i % 5 == 0 else [ex, fb])
    events.append(feedback("x7", value=True, seconds=999))  # a second thumbs up: ignored
    events.append(
        feedback("x8", value=0.3, name="helpfulness", seconds=999)
    )  # not the reward metric
    return events


async def project(store: Store, events: Sequence[BaseEvent], batch: int, **kw: Any) -> Projection:
    projection = Projection(store, consumer="learner", rewards=RULES, **kw)
    await projection.load()
    items = deliveries(events)
    for i in range(0, len(items), batch):
        await projection.apply(items[i : i + batch])
    return projection


async def arm(store: Store, variant: str) -> Any:
    return (await store.arm_totals("greet"))[variant]


async def test_counts_executions_errors_and_rewards(store: Store) -> None:
    await project(store, traffic(), batch=500)
    a, b = await arm(store, "a"), await arm(store, "b")
    assert (a.executions, b.executions) == (20, 20)
    assert a.errors + b.errors == 4  # i = 0, 13, 26, 39
    assert (a.rewarded, b.rewarded) == (20, 20)
    assert b.reward_mean is not None and a.reward_mean is not None and b.reward_mean > a.reward_mean
    assert b.cost_usd == pytest.approx(0.02)
    assert await store.position("learner") == len(traffic())


async def test_totals_do_not_depend_on_batch_boundaries(store: Store, make_store: Any) -> None:
    await project(store, traffic(), batch=1000)
    other = await make_store()
    await project(other, traffic(), batch=1)
    assert await compare(store, other) == []


async def test_redelivered_and_duplicate_batches_change_nothing(
    store: Store, make_store: Any
) -> None:
    events = traffic()
    projection = await project(store, events, batch=25)
    items = deliveries(events)
    before = {tb.name: await store.dump(tb) for tb in t.PROJECTED_TABLES}
    result = await projection.apply(items[10:60])  # a redelivery of old sequences
    assert (result.applied, result.skipped) == (0, 50)
    again = await projection.apply(items)
    assert again.applied == 0
    assert {tb.name: await store.dump(tb) for tb in t.PROJECTED_TABLES} == before
    # A fresh process (new Projection, same store) also skips what was applied.
    restarted = Projection(store, consumer="learner", rewards=RULES)
    await restarted.load()
    assert (await restarted.apply(items[-3:])).applied == 0


async def test_same_execution_under_two_event_ids_counts_once(store: Store) -> None:
    await project(
        store,
        [registered(champion=True), execution("x1"), execution("x1"), feedback("x1")],
        batch=2,
    )
    a = await arm(store, "a")
    assert (a.executions, a.rewarded) == (1, 1)


async def test_poison_event_is_dead_lettered_and_the_position_advances(store: Store) -> None:
    projection = Projection(store, consumer="learner", rewards=RULES)
    await projection.load()
    good = deliveries([registered(champion=True), execution("x1")])
    poison = Delivery(sequence=3, event=None, data=b"{not json", error="not JSON")
    after = deliveries([feedback("x1")], start=4)
    result = await projection.apply([*good, poison, *after])
    assert [d.sequence for d in result.dead_letters] == [3]
    assert result.dead_letters[0].data == b"{not json"
    assert result.position == 4
    assert (await arm(store, "a")).rewarded == 1


async def test_late_feedback_joins_its_execution_across_batches(store: Store) -> None:
    projection = await project(
        store, [registered(champion=True), execution("x1", latency_ms=80)], batch=10
    )
    await projection.apply(deliveries([feedback("x1", value=True, seconds=3600)], start=3))
    a = await arm(store, "a")
    assert (a.rewarded, a.reward_sum) == (1, 1.0)
    rows = await store.dump(t.executions)
    assert rows[0][t.executions.c.keys().index("reward")] == 1.0
    # The reward lands in the execution's minute, not the feedback's.
    assert [(m, r) for m, _, _, r, _ in await store.trend("greet", 0)] == [
        (rows[0][12] // 60_000, 1)
    ]


async def test_early_feedback_waits_for_its_execution(store: Store) -> None:
    projection = await project(
        store, [registered(champion=True), feedback("x1", value=0.25)], batch=10
    )
    assert len(await store.dump(t.pending_feedback)) == 1
    assert "a" not in await store.arm_totals("greet")
    await projection.apply(deliveries([execution("x1")], start=3))
    a = await arm(store, "a")
    assert (a.rewarded, a.reward_sum) == (1, 0.25)
    assert await store.dump(t.pending_feedback) == []


async def test_first_reward_feedback_counts_and_other_metrics_are_ignored(store: Store) -> None:
    events = [
        registered(champion=True),
        feedback("x1", value=0.9, name="helpfulness"),
        feedback("x1", value=False),
        execution("x1"),
        feedback("x1", value=True),
        execution("x2"),
        feedback("x2", value=0.7, name="helpfulness"),
        feedback("x2", value=True),
        feedback("x2", value=False),
    ]
    await project(store, events, batch=3)
    a = await arm(store, "a")
    assert (a.rewarded, a.reward_sum, a.positive) == (2, 1.0, 1)


async def test_cost_and_latency_weights_lower_the_reward(store: Store) -> None:
    rules = {"greet": RewardRule(feedback="thumbs_up", cost_weight=100.0, latency_weight=0.5)}
    events = [
        registered(champion=True),
        execution("x1", cost_usd=0.001, latency_ms=400.0),
        feedback("x1", True),
    ]
    projection = Projection(store, consumer="learner", rewards=rules)
    await projection.load()
    await projection.apply(deliveries(events))
    assert (await arm(store, "a")).reward_sum == pytest.approx(1.0 - 0.1 - 0.2)


async def test_config_champion_wins_over_first_registered(store: Store) -> None:
    await project(
        store,
        [registered(variant="b"), registered(variant="a", champion=True), registered(variant="c")],
        batch=1,
    )
    row = await store.prompt_row("greet")
    assert row is not None and row["champion"] == "a"
    statuses = {v["variant"]: v["status"] for v in await store.variant_rows("greet")}
    assert statuses == {"a": "champion", "b": "challenger", "c": "challenger"}


async def test_commands_are_answered_at_their_stream_position(store: Store) -> None:
    setup = [registered(variant="a", champion=True), registered(variant="b")]
    projection = await project(store, setup, batch=10)
    commands = [
        PromoteCommand(prompt_id="greet", variant="zzz"),
        PromoteCommand(prompt_id="nope", variant="a"),
        RollbackCommand(prompt_id="greet"),
        PromoteCommand(prompt_id="greet", variant="b", actor="alice"),
        PauseCommand(prompt_id="greet", paused=False),
    ]
    result = await projection.apply(deliveries(commands, start=3))
    answers = result.outbox
    assert [type(a) for a in answers] == [
        CommandRejected,
        CommandRejected,
        CommandRejected,
        VariantPromoted,
        CommandRejected,
    ]
    assert "unknown variant 'zzz'" in answers[0].reason  # type: ignore[attr-defined]
    assert "nothing to roll back" in answers[2].reason  # type: ignore[attr-defined]
    assert len(await store.outbox_rows()) == 5
    # The answers come back through the stream: state changes, the outbox empties.
    await projection.apply(deliveries(answers, start=8))
    row = await store.prompt_row("greet")
    assert row is not None and (row["champion"], row["previous_champion"]) == ("b", "a")
    assert await store.outbox_rows() == []
    statuses = {v["variant"]: v["status"] for v in await store.variant_rows("greet")}
    # The previous champion is the probation's holdback (a fixed share of traffic).
    assert statuses == {"a": "holdback", "b": "probation"}
    rollback = await projection.apply(deliveries([RollbackCommand(prompt_id="greet")], start=13))
    assert isinstance(rollback.outbox[0], VariantRolledBack) and rollback.outbox[0].restored == "a"
    decisions = await store.decision_rows("greet")
    assert [d["type"] for d in decisions][:2] == ["command.rejected", "variant.promoted"]
    assert decisions[1]["summary"] == "promoted b over a (manual)"


async def test_replay_mode_computes_answers_without_writing_the_outbox(store: Store) -> None:
    setup = [
        registered(variant="a", champion=True),
        registered(variant="b"),
        PromoteCommand(prompt_id="greet", variant="b"),
    ]
    projection = await project(store, setup, batch=10, write_outbox=False)
    assert projection.in_flight == {}
    assert await store.outbox_rows() == []


def promotion_traffic() -> list[BaseEvent]:
    """b is promoted over a mid-stream; traffic (and a late reward) continues after."""
    events = traffic()
    events.insert(30, VariantPromoted(prompt_id="greet", variant="b", previous_champion="a"))
    events += [execution("late", variant="b", seconds=400, status="error"), feedback("late")]
    return events


@pytest.mark.parametrize("window", [None, "3m"])
async def test_a_promotion_freezes_the_baseline_and_counts_the_champion_since(
    store: Store, window: str | None, tmp_path: Path
) -> None:
    events = promotion_traffic()
    config = PromotionConfig(evaluation_window=window)
    await project(store, events, batch=7, promotion=lambda _p: config)
    row = await store.prompt_row("greet")
    assert row is not None and (row["champion"], row["previous_champion"]) == ("b", "a")
    # The baseline is a's counters at the promotion (in the window then, if one is set).
    before = Store(f"sqlite+aiosqlite:///{tmp_path / 'before.db'}")
    async with before:
        await project(before, events[:30], batch=500, promotion=lambda _p: config)
        prompt = await before.prompt_row("greet")
        assert prompt is not None
        since = None
        if window is not None:
            since = prompt["last_event_ms"] // 60_000 - 3 + 1
        frozen = (await before.arm_totals("greet", since_minute=since))["a"]
        final_b = (await before.arm_totals("greet"))["b"]
    assert (row["baseline_rewarded"], row["baseline_executions"], row["baseline_errors"]) == (
        frozen.rewarded,
        frozen.executions,
        frozen.errors,
    )
    assert row["baseline_reward_micro"] == round(frozen.reward_sum * 1_000_000)
    assert 0 < frozen.rewarded < 20 if window else frozen.rewarded > 0
    # The champion's counters since: everything b got after the promotion.
    now_b = await arm(store, "b")
    assert row["probation_rewarded"] == now_b.rewarded - final_b.rewarded
    assert row["probation_executions"] == now_b.executions - final_b.executions
    assert row["probation_errors"] == now_b.errors - final_b.errors >= 1


async def test_the_probation_record_does_not_depend_on_batch_boundaries(
    store: Store, tmp_path: Path
) -> None:
    events = promotion_traffic()
    await project(store, events, batch=1)
    other = Store(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    async with other:
        await project(other, events, batch=500)
        assert await compare(store, other) == []
