"""The learner publishes each prompt's recent periods for the TUI (bucket
``promptlab_analytics``), in the shape of ``promptlab analytics --json``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from learner_factories import execution, feedback

from promptlab.events.memory import MemoryBus
from promptlab.events.snapshots import AnalyticsSnapshot
from promptlab.events.subjects import Bucket
from promptlab.learner.config import LearnerSettings, StorageSettings
from promptlab.learner.service import Learner
from promptlab.prompts.spec import PromptSpec

HOUR = 3600


def greet_spec() -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "greet",
            "variables": [{"name": "tone", "enum": ["formal", "casual"]}],
            "reward": {"feedback": "thumbs_up"},
            "variants": [
                {"name": "a", "model": "simulated/echo", "template": "Hi {{ tone }}"},
                {"name": "b", "model": "simulated/echo", "template": "Hello {{ tone }}"},
            ],
        }
    )


def storage(tmp_path: Path) -> StorageSettings:
    return StorageSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}")


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus()
    await bus.start()
    yield bus
    await bus.close()


async def analytics_with(
    bus: MemoryBus, executions: int, timeout: float = 10.0
) -> AnalyticsSnapshot:
    """The first analytics snapshot of ``greet`` that counts ``executions`` calls in all."""

    async def watch() -> AnalyticsSnapshot:
        async for entry in bus.kv_watch(Bucket.ANALYTICS.value):
            if entry.key != "greet" or entry.value is None:
                continue
            snapshot = AnalyticsSnapshot.decode(entry.value)
            day = snapshot.interval("day")
            if day is not None and sum(p.executions for p in day.periods) == executions:
                return snapshot
        raise AssertionError("the watch ended")

    return await asyncio.wait_for(watch(), timeout)


async def test_traffic_is_published_by_hour_and_day_with_the_top_values(
    bus: MemoryBus, tmp_path: Path
) -> None:
    settings = LearnerSettings(
        batch_size=50,
        snapshot_interval_ms=10,
        analytics_interval_s=0.05,
        analytics_day_refresh_s=0,  # every round, so the later traffic shows in the days too
    )
    async with Learner(settings, storage(tmp_path), bus, {"greet": greet_spec()}, policy=None):
        for i, (variant, seconds, tone) in enumerate(
            [("a", 10, "formal"), ("a", 20, "casual"), ("b", 30, "formal"), ("a", HOUR, "formal")]
        ):
            await bus.publish(
                execution(
                    f"x{i}",
                    variant=variant,
                    seconds=seconds,
                    latency_ms=100.0 * (i + 1),
                    variable_values={"tone": tone},
                )
            )
            await bus.publish(feedback(f"x{i}", value=variant == "a", seconds=seconds + 1))
        snapshot = await analytics_with(bus, 4)
        # More traffic is published in a later round (the prompt was marked again).
        await bus.publish(execution("x9", variant="b", seconds=HOUR + 5))
        later = await analytics_with(bus, 5)

    hour = snapshot.interval("hour")
    assert hour is not None
    assert [(p.start.hour, p.variant, p.executions, p.latency_p95_ms) for p in hour.periods] == [
        (12, "a", 2, 200.0),
        (12, "b", 1, 300.0),
        (13, "a", 1, 400.0),
    ]
    assert hour.periods[2].trends["executions"] == -1 and hour.periods[2].quality == 1.0
    [tone] = hour.all_variants[0].top_values
    assert (tone.variable, tone.recorded, [(v.value, v.count) for v in tone.values]) == (
        "tone",
        3,
        [("formal", 2), ("casual", 1)],
    )
    day = snapshot.interval("day")
    assert day is not None
    assert [(p.variant, p.executions, p.quality) for p in day.periods] == [
        ("a", 3, 1.0),
        ("b", 1, 0.0),
    ]
    assert later.learner_sequence > snapshot.learner_sequence


async def test_zero_interval_publishes_no_analytics(bus: MemoryBus, tmp_path: Path) -> None:
    settings = LearnerSettings(batch_size=50, snapshot_interval_ms=10, analytics_interval_s=0)
    async with Learner(
        settings, storage(tmp_path), bus, {"greet": greet_spec()}, policy=None
    ) as learner:
        await bus.publish(execution("x1", variable_values={"tone": "formal"}))
        await learner.caught_up()
        await learner.stop()
    assert await bus.kv_get(Bucket.STATS.value, "greet") is not None
    assert await bus.kv_get(Bucket.ANALYTICS.value, "greet") is None


async def test_the_day_series_is_reused_until_it_is_due(bus: MemoryBus, tmp_path: Path) -> None:
    """Within ``day_refresh_s`` a round rebuilds the hours and reuses the days."""
    from promptlab.learner.snapshots.analytics import AnalyticsWriter

    settings = LearnerSettings(batch_size=50, snapshot_interval_ms=10, analytics_interval_s=0)
    clock = [0.0]
    async with Learner(
        settings, storage(tmp_path), bus, {"greet": greet_spec()}, policy=None
    ) as learner:
        writer = AnalyticsWriter(
            bus, learner.store, interval_s=1.0, day_refresh_s=300.0, clock=lambda: clock[0]
        )
        await bus.publish(execution("x1", seconds=10, variable_values={"tone": "formal"}))
        await learner.caught_up()
        writer.mark(["greet"])
        assert await writer.flush(learner_sequence=1) == 1
        await bus.publish(execution("x2", seconds=20, variable_values={"tone": "formal"}))
        await learner.caught_up()
        clock[0] = 100.0  # not due: the hours move, the days are reused
        writer.mark(["greet"])
        await writer.flush(learner_sequence=2)
        entry = await bus.kv_get(Bucket.ANALYTICS.value, "greet")
        assert entry is not None and entry.value is not None
        snap = AnalyticsSnapshot.decode(entry.value)
        hour, day = snap.interval("hour"), snap.interval("day")
        assert hour is not None and day is not None
        assert sum(p.executions for p in hour.periods) == 2
        assert sum(p.executions for p in day.periods) == 1
        clock[0] = 400.0  # due: the days are rebuilt
        writer.mark(["greet"])
        await writer.flush(learner_sequence=3)
        entry = await bus.kv_get(Bucket.ANALYTICS.value, "greet")
        assert entry is not None and entry.value is not None
        day = AnalyticsSnapshot.decode(entry.value).interval("day")
        assert day is not None and sum(p.executions for p in day.periods) == 2
        await learner.stop()
