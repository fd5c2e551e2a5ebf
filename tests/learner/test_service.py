"""The learner service in-process on the memory bus: registration, commands, decisions,
dead letters and snapshots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from learner_factories import execution, feedback

from promptlab.events.memory import MemoryBus
from promptlab.events.models import (
    BaseEvent,
    CommandRejected,
    PauseCommand,
    PromoteCommand,
    RoutingInfo,
    VariantPromoted,
    VariantRegistered,
    VariantRolledBack,
    deterministic_event_id,
)
from promptlab.events.snapshots import RoutingSnapshot, StatsSnapshot
from promptlab.events.subjects import Bucket, Header, Subject
from promptlab.learner.config import LearnerSettings, StorageSettings
from promptlab.learner.decide import default_policy
from promptlab.learner.service import Learner
from promptlab.learner.storage.store import ArmTotals, Store
from promptlab.learner.storage.view import ArmView, PromptView
from promptlab.prompts.config import PromotionConfig
from promptlab.prompts.spec import PromptSpec


def greet_spec(**promotion: Any) -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "greet",
            "variables": [{"name": "name"}],
            "reward": {"feedback": "thumbs_up"},
            "promotion": promotion,
            "routing": {"exploration_cap": 0.3},
            "variants": [
                {
                    "name": "a",
                    "model": "simulated/echo",
                    "template": "Hi {{ name }}",
                    "champion": True,
                },
                {"name": "b", "model": "simulated/echo", "template": "Hello {{ name }}"},
            ],
        }
    )


class RecordingBus(MemoryBus):
    """A memory bus that also remembers raw publishes (dead letters)."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish_raw(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.raw.append((subject, data, dict(headers or {})))
        await super().publish_raw(subject, data, headers)


@pytest.fixture
async def bus() -> AsyncIterator[RecordingBus]:
    bus = RecordingBus()
    await bus.start()
    yield bus
    await bus.close()


def settings(**kw: Any) -> LearnerSettings:
    return LearnerSettings(**{"batch_size": 50, "snapshot_interval_ms": 10, **kw})


def storage(tmp_path: Path) -> StorageSettings:
    return StorageSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}")


async def stream(bus: MemoryBus) -> list[BaseEvent]:
    return [e async for _, e, _ in bus.read(1) if e is not None]


async def routing(bus: MemoryBus, prompt: str = "greet") -> RoutingSnapshot:
    entry = await bus.kv_get(Bucket.ROUTING.value, prompt)
    assert entry is not None and entry.value is not None
    return RoutingSnapshot.decode(entry.value)


async def test_registers_config_variants_once_and_publishes_snapshots(
    bus: RecordingBus, tmp_path: Path
) -> None:
    async with Learner(
        settings(), storage(tmp_path), bus, {"greet": greet_spec()}, policy=None
    ) as learner:
        await learner.caught_up()
        await learner.stop()
    snap = await routing(bus)
    assert (snap.champion, [a.variant for a in snap.arms], snap.exploration_cap) == (
        "a",
        ["a", "b"],
        0.3,
    )
    # A restart (new process, same database) announces nothing new.
    async with Learner(
        settings(), storage(tmp_path), bus, {"greet": greet_spec()}, policy=None
    ) as learner:
        await learner.caught_up()
    registered = [e for e in await stream(bus) if isinstance(e, VariantRegistered)]
    assert len(registered) == 2


async def test_traffic_updates_the_stats_snapshot(bus: RecordingBus, tmp_path: Path) -> None:
    async with Learner(
        settings(), storage(tmp_path), bus, {"greet": greet_spec()}, policy=None
    ) as learner:
        await learner.caught_up()
        for i in range(10):
            await bus.publish(execution(f"x{i}", variant="b", seconds=i))
            await bus.publish(feedback(f"x{i}", value=i % 2 == 0, seconds=i + 1))
        await learner.caught_up()
        await learner.stop()
    entry = await bus.kv_get(Bucket.STATS.value, "greet")
    assert entry is not None and entry.value is not None
    stats = StatsSnapshot.decode(entry.value)
    b = next(v for v in stats.variants if v.variant == "b")
    assert (b.executions, b.rewarded, b.reward_mean) == (10, 10, 0.5)
    assert b.latency_p50_ms == pytest.approx(100.0, rel=0.03)
    assert stats.learner_sequence == learner.projection.position
    assert (await routing(bus)).arms[1].alpha == pytest.approx(6.0)


async def test_commands_are_carried_out_or_rejected_through_the_stream(
    bus: RecordingBus, tmp_path: Path
) -> None:
    async with Learner(
        settings(), storage(tmp_path), bus, {"greet": greet_spec()}, policy=None
    ) as learner:
        await learner.caught_up()
        promote = PromoteCommand(prompt_id="greet", variant="b", actor="alice")
        bogus = PromoteCommand(prompt_id="greet", variant="nope")
        pause = PauseCommand(prompt_id="greet", paused=True)
        for command in (promote, bogus, pause):
            await bus.publish(command)
        await learner.wait_for(
            lambda: not learner.projection.in_flight and learner.projection.position >= 8
        )
        await learner.stop()
    events = await stream(bus)
    promoted = [e for e in events if isinstance(e, VariantPromoted)]
    assert len(promoted) == 1 and (promoted[0].variant, promoted[0].reason, promoted[0].actor) == (
        "b",
        "manual",
        "alice",
    )
    rejected = [e for e in events if isinstance(e, CommandRejected)]
    assert (
        len(rejected) == 1
        and rejected[0].command_id == bogus.event_id
        and "unknown variant 'nope'" in rejected[0].reason
    )
    snap = await routing(bus)
    assert (snap.champion, snap.paused) == ("b", True)


async def test_a_poison_event_goes_to_dead_letter_and_the_learner_moves_on(
    bus: RecordingBus, tmp_path: Path
) -> None:
    async with Learner(
        settings(), storage(tmp_path), bus, {"greet": greet_spec()}, policy=None
    ) as learner:
        await bus.publish_raw(
            Subject.EXECUTION.value, b'{"type": "execution.completed", "nonsense": 1}'
        )
        await bus.publish(execution("x1", variant="a"))
        await learner.caught_up()
        await learner.stop()
        totals = await learner.store.arm_totals("greet")
    assert totals["a"].executions == 1
    dead = [r for r in bus.raw if r[0] == Subject.DEAD_LETTER.value]
    assert len(dead) == 1
    assert (
        dead[0][1].startswith(b'{"type"')
        and "invalid execution.completed" in dead[0][2][Header.DEAD_LETTER_REASON.value]
    )


def promote_b_after(n: int) -> Any:
    """A stand-in policy: promote b once it has ``n`` rewarded executions."""
    calls: list[int] = []

    def policy(view: PromptView, rng: np.random.Generator, seq: int) -> BaseEvent | None:
        calls.append(seq)
        b = view.arms["b"]
        if view.champion == "a" and b.n >= n:
            return VariantPromoted(
                event_id=deterministic_event_id("test-promote", view.prompt_id, seq),
                prompt_id=view.prompt_id,
                variant="b",
                previous_champion="a",
                trigger_sequence=seq,
            )
        return None

    policy.calls = calls  # type: ignore[attr-defined]
    return policy


async def test_a_decision_is_published_once_and_applied_when_it_comes_back(
    bus: RecordingBus, tmp_path: Path
) -> None:
    policy = promote_b_after(3)
    async with Learner(
        settings(batch_size=2), storage(tmp_path), bus, {"greet": greet_spec()}, policy=policy
    ) as learner:
        for i in range(12):
            await bus.publish(execution(f"x{i}", variant="b", seconds=i))
            await bus.publish(feedback(f"x{i}", seconds=i + 1))
        await learner.caught_up()
        await learner.wait_for(lambda: not learner.projection.in_flight)
        await learner.stop()
        assert await learner.store.outbox_rows() == []
    promoted = [e for e in await stream(bus) if isinstance(e, VariantPromoted)]
    assert len(promoted) == 1 and promoted[0].trigger_sequence is not None
    assert (await routing(bus)).champion == "b"
    assert len(policy.calls) >= 2  # it kept being asked, yet decided only once


async def test_the_policy_sees_the_store_through_a_reopened_database(
    bus: RecordingBus, tmp_path: Path
) -> None:
    store = Store(storage(tmp_path).url)
    async with Learner(
        settings(), storage(tmp_path), bus, {"greet": greet_spec()}, store=store, policy=None
    ) as learner:
        await learner.caught_up()
    assert await store.prompt_ids() == ["greet"]  # an injected store stays open
    await store.close()


async def test_an_event_that_breaks_the_projection_is_set_aside(
    bus: RecordingBus, tmp_path: Path
) -> None:
    # Decodes fine, but its cost overflows a 64-bit counter: the batch fails, then the
    # learner finds the culprit, dead-letters it and keeps the rest of the batch.
    async with Learner(
        settings(), storage(tmp_path), bus, {"greet": greet_spec()}, policy=None
    ) as learner:
        await bus.publish(execution("x1", variant="a"))
        await bus.publish(execution("huge", variant="a", cost_usd=1e30))
        await bus.publish(execution("x2", variant="a", latency_ms=float("nan")))
        await learner.caught_up()
        await learner.stop()
        totals = await learner.store.arm_totals("greet")
    assert totals["a"].executions == 2
    dead = [r for r in bus.raw if r[0] == Subject.DEAD_LETTER.value]
    assert len(dead) == 1 and "cannot be projected" in dead[0][2][Header.DEAD_LETTER_REASON.value]


async def test_default_policy_promotes_a_clearly_better_challenger(
    bus: RecordingBus, tmp_path: Path
) -> None:
    spec = greet_spec(min_samples=100, probation_samples=0)
    async with Learner(
        settings(batch_size=100), storage(tmp_path), bus, {"greet": spec}
    ) as learner:
        rng = np.random.default_rng(1)
        for i in range(600):
            variant = "ab"[i % 2]
            # An even split, as the router logs it: the same-period test weights by it.
            split = RoutingInfo(strategy="fixed", probability=0.5)
            await bus.publish(execution(f"x{i}", variant=variant, seconds=i, routing=split))
            await bus.publish(
                feedback(
                    f"x{i}",
                    value=bool(rng.random() < (0.4 if variant == "a" else 0.8)),
                    seconds=i + 1,
                )
            )
        await learner.caught_up()
        await learner.wait_for(lambda: not learner.projection.in_flight)
        await learner.stop()
    promoted = [e for e in await stream(bus) if isinstance(e, VariantPromoted)]
    assert len(promoted) == 1 and promoted[0].variant == "b" and promoted[0].evidence is not None
    assert promoted[0].evidence.p_better is not None and promoted[0].evidence.p_better >= 0.95
    assert (await routing(bus)).champion == "b"


def test_default_policy_rolls_back_a_regressing_probation_from_the_projected_record() -> None:
    config = PromotionConfig(min_samples=100, probation_samples=300)

    def totals(variant: str, n: int, s: int) -> ArmTotals:
        return ArmTotals("greet", variant, executions=n, rewarded=n, reward_sum=s, reward_sq_sum=s)

    view = PromptView(
        prompt_id="greet",
        champion="b",
        paused=False,
        previous_champion="a",
        probation_variant="b",
        probation_since=totals("b", 300, 114),  # 0.38 since the promotion
        probation_baseline=totals("a", 4000, 2000),  # 0.50 frozen at the promotion
        last_sequence=900,
        last_event_ms=1_700_000_000_000,
        config=config,
        arms={
            "a": ArmView("a", "challenger", totals=totals("a", 4100, 2050)),
            "b": ArmView("b", "probation", totals=totals("b", 1300, 744)),
        },
    )
    event = default_policy(view, np.random.default_rng(0), 901)
    assert isinstance(event, VariantRolledBack)
    assert (event.variant, event.restored, event.trigger_sequence) == ("b", "a", 901)
    assert event.evidence is not None and event.evidence.challenger.n == 300
    assert event.evidence.champion.n == 4000
    assert default_policy(view, np.random.default_rng(0), 901) == event  # replay-identical
