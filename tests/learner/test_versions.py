"""A variant is (prompt, name, version): a changed template under the same name is a new
version with no evidence; the old version is retired with its evidence, on SQLite and
PostgreSQL, independent of batch boundaries; and through the learner, an edited prompt
file does the same."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from learner_factories import T0, at, deliveries, execution, feedback
from polling import until

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.models import BaseEvent, VariantRegistered
from promptlab.events.snapshots import RoutingSnapshot
from promptlab.events.subjects import Bucket
from promptlab.learner.config import LearnerSettings, StorageSettings
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.replay import compare, rebuild
from promptlab.learner.service import Learner
from promptlab.learner.storage.store import Store
from promptlab.prompts.spec import PromptSpec

RULES = {"greet": RewardRule(feedback="thumbs_up")}


def version(name: str, v: str, seconds: float, champion: bool = False) -> VariantRegistered:
    return VariantRegistered(
        prompt_id="greet",
        variant=name,
        version=v,
        model="simulated/echo",
        template=f"Hello ({v})",
        champion=champion,
        occurred_at=at(seconds) if seconds else T0,
    )


def stream() -> list[BaseEvent]:
    events: list[BaseEvent] = [version("a", "v1", 0, champion=True), version("b", "b1", 0)]
    for i in range(20):
        events += [execution(f"x{i}", seconds=i + 1), feedback(f"x{i}", True, seconds=i + 1.5)]
    events.append(execution("inflight", seconds=30, version="v1"))  # served as v1 ...
    events.append(version("a", "v2", 31))  # ... the template changes under the same name
    events.append(execution("late-v1", seconds=32, version="v1"))  # v1 call finishing late
    events.append(feedback("inflight", True, seconds=33))  # feedback for a v1 call
    events.append(feedback("x3", False, seconds=34))  # a correction for a v1 call
    for i in range(5):
        events += [
            execution(f"y{i}", seconds=40 + i, version="v2"),
            feedback(f"y{i}", i % 2 == 0, seconds=40.5 + i),
        ]
    return events


async def project(store: Store, events: Sequence[BaseEvent], batch: int) -> None:
    projection = Projection(store, consumer="learner", rewards=RULES)
    await projection.load()
    items = deliveries(events)
    for i in range(0, len(items), batch):
        await projection.apply(items[i : i + batch])


async def test_a_new_version_starts_at_zero_and_the_old_one_is_retired_with_its_evidence(
    store: Store, make_store: Callable[[], Awaitable[Store]]
) -> None:
    events = stream()
    await project(store, events, batch=len(events))
    totals = await store.arm_totals("greet")
    new, old = totals["a"], totals["a@v1"]
    assert (new.executions, new.rewarded, new.positive) == (5, 5, 3)
    assert old.executions == 22 and old.rewarded == 21  # late-v1 has no feedback
    assert old.positive == 20  # x3 corrected to a thumbs down (feedback_repeat = last)
    rows = {r["variant"]: r for r in await store.variant_rows("greet")}
    assert (rows["a"]["version"], rows["a"]["status"]) == ("v2", "champion")
    assert (rows["a@v1"]["version"], rows["a@v1"]["status"]) == ("v1", "retired")
    [change] = [
        d for d in await store.decision_rows("greet") if d["type"].endswith("version_changed")
    ]
    assert change["variant"] == "a" and change["previous"] == "a@v1"
    assert "v1 -> v2" in change["summary"] and "no evidence" in change["summary"]
    for batch in (1, 4, 13):
        other = await make_store()
        await project(other, events, batch=batch)
        assert await compare(store, other) == [], f"batch size {batch}"


GREET = """
id = "greet"
[reward]
feedback = "thumbs_up"
[[variants]]
name = "a"
model = "simulated/echo"
template = "{template}"
champion = true
[[variants]]
name = "b"
model = "simulated/echo"
template = "Hello"
"""


def spec(template: str) -> PromptSpec:
    import tomllib

    return PromptSpec.model_validate(tomllib.loads(GREET.format(template=template)))


@pytest.mark.slow
async def test_a_template_edited_in_the_prompt_file_is_a_new_version_at_zero(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    db = f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}"
    settings = LearnerSettings(snapshot_interval_ms=20)
    before, after = spec("Hi"), spec("Hi there, friend")
    try:
        async with Learner(
            settings, StorageSettings(url=db), bus, {"greet": before}, policy=None
        ) as learner:
            for i in range(30):
                await bus.publish(
                    execution(f"x{i}", seconds=i, version=before.variant("a").version)
                )
                await bus.publish(feedback(f"x{i}", True, seconds=i + 1))
            await learner.caught_up()
            assert (await learner.store.arm_totals("greet"))["a"].rewarded == 30
        # the operator edits the template of "a" and restarts
        async with Learner(
            settings, StorageSettings(url=db), bus, {"greet": after}, policy=None
        ) as learner:
            await learner.wait_for(
                lambda: (
                    learner.projection.state.variants[("greet", "a")].version
                    == after.variant("a").version
                )
            )
            await bus.publish(execution("y0", seconds=100, version=after.variant("a").version))
            await learner.caught_up()
            totals = await learner.store.arm_totals("greet")
            assert (totals["a"].executions, totals["a"].rewarded) == (1, 0)
            old = f"a@{before.variant('a').version}"
            assert totals[old].rewarded == 30
            statuses = {
                r["variant"]: r["status"] for r in await learner.store.variant_rows("greet")
            }
            assert statuses["a"] == "champion" and statuses[old] == "retired"

            async def routing_has_the_new_version() -> bool:
                entry = await bus.kv_get(Bucket.ROUTING.value, "greet")
                if entry is None or entry.value is None:
                    return False
                arms = {a.variant: a for a in RoutingSnapshot.decode(entry.value).arms}
                return "a" in arms and arms["a"].version == after.variant("a").version

            await until(routing_has_the_new_version)
            live = learner.store
            single = Store(f"sqlite+aiosqlite:///{tmp_path / 'single.db'}")
            await single.create()
            try:
                await rebuild(
                    bus,
                    single,
                    consumer=settings.durable,
                    until=await live.position(settings.durable),
                    rewards=RULES,
                )
                assert await compare(live, single) == []
            finally:
                await single.close()
    finally:
        await bus.close()
