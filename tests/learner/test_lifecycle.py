"""Variant lifecycle: draft / active / deprecated / archived, moved by operator commands
that the learner carries out (or refuses) at their stream position; a retired or
non-active variant cannot be promoted; snapshots tell the routers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from learner_factories import deliveries, execution, feedback, registered

from promptlab.events.models import (
    BaseEvent,
    CommandRejected,
    LifecycleCommand,
    PromoteCommand,
    VariantLifecycleChanged,
    VariantPromoted,
    VariantRetired,
)
from promptlab.learner.analysis import analyze, rng_for
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.snapshots.routing import build_snapshots
from promptlab.learner.storage.store import Store
from promptlab.learner.storage.view import load_view
from promptlab.prompts import load_prompt_dir
from promptlab.prompts.config import PromotionConfig
from promptlab.sidecar.router import Router

pytestmark = pytest.mark.asyncio

RULES = {"greet": RewardRule(feedback="thumbs_up")}


async def projected(store: Store, events: Sequence[BaseEvent]) -> Projection:
    projection = Projection(store, consumer="learner", rewards=RULES)
    await projection.load()
    await projection.apply(deliveries(events))
    return projection


async def answer(projection: Projection, command: BaseEvent, seq: int) -> BaseEvent:
    """Apply one command, then its answer (as the stream brings it back)."""
    result = await projection.apply(deliveries([command], start=seq))
    (reply,) = result.outbox
    await projection.apply(deliveries([reply], start=seq + 1))
    return reply


async def lifecycles(store: Store) -> dict[str, str]:
    return {v["variant"]: v["lifecycle"] for v in await store.variant_rows("greet")}


def setup_events() -> list[BaseEvent]:
    return [
        registered(variant="a", champion=True),
        registered(variant="b"),
        registered(variant="c", status="draft"),
    ]


async def test_each_allowed_transition_is_carried_out_with_who_and_why(store: Store) -> None:
    projection = await projected(store, setup_events())
    assert await lifecycles(store) == {"a": "active", "b": "active", "c": "draft"}
    steps = [
        ("c", "active"),
        ("c", "deprecated"),
        ("c", "active"),
        ("c", "archived"),
        ("c", "deprecated"),
        ("c", "archived"),
        ("c", "active"),
        ("b", "archived"),
    ]
    seq = 10
    for variant, status in steps:
        cmd = LifecycleCommand(
            prompt_id="greet", variant=variant, status=status, actor="alice", reason="why not"
        )
        reply = await answer(projection, cmd, seq)
        seq += 2
        assert isinstance(reply, VariantLifecycleChanged), reply
        assert (reply.status, reply.actor, reply.reason) == (status, "alice", "why not")
        assert (await lifecycles(store))[variant] == status
    decisions = await store.decision_rows("greet")
    summaries = [d["summary"] for d in decisions if d["type"] == "variant.lifecycle"]
    assert "c draft -> active: why not" in summaries and len(summaries) == 8
    assert [d["actor"] for d in decisions if d["type"] == "variant.lifecycle"] == ["alice"] * 8


@pytest.mark.parametrize(
    ("setup", "command", "because"),
    [
        ([], ("c", "draft"), "'c' is already draft"),
        ([], ("c", "deprecated"), "cannot go from draft to deprecated"),
        ([("c", "active")], ("c", "draft"), "cannot go from active to draft"),
        ([], ("b", "active"), "'b' is already active"),
        ([], ("a", "deprecated"), "'a' is the champion"),
        ([], ("a", "archived"), "'a' is the champion"),
        ([], ("zzz", "active"), "unknown variant 'zzz'"),
    ],
)
async def test_refused_transitions_change_nothing(
    store: Store, setup: list[tuple[str, str]], command: tuple[str, str], because: str
) -> None:
    projection = await projected(store, setup_events())
    seq = 10
    for variant, status in setup:
        cmd = LifecycleCommand(prompt_id="greet", variant=variant, status=status)
        assert isinstance(await answer(projection, cmd, seq), VariantLifecycleChanged)
        seq += 2
    before = await lifecycles(store)
    variant, status = command
    reply = await answer(
        projection, LifecycleCommand(prompt_id="greet", variant=variant, status=status), seq
    )
    assert isinstance(reply, CommandRejected)
    assert because in reply.reason
    assert await lifecycles(store) == before


@pytest.mark.parametrize(
    ("lifecycle", "because"),
    [("draft", "is draft and cannot be promoted"), ("archived", "is archived")],
)
async def test_a_variant_that_is_not_active_cannot_be_promoted(
    store: Store, lifecycle: str, because: str
) -> None:
    events = [*setup_events()[:2], registered(variant="c", status=lifecycle)]
    projection = await projected(store, events)
    reply = await answer(projection, PromoteCommand(prompt_id="greet", variant="c"), 10)
    assert isinstance(reply, CommandRejected) and because in reply.reason
    # activated, it can
    await answer(projection, LifecycleCommand(prompt_id="greet", variant="c", status="active"), 12)
    assert isinstance(
        await answer(projection, PromoteCommand(prompt_id="greet", variant="c"), 14),
        VariantPromoted,
    )


async def test_a_retired_variant_cannot_be_promoted_nor_activated(store: Store) -> None:
    events = [*setup_events()[:2], VariantRetired(prompt_id="greet", variant="b", reason="futile")]
    projection = await projected(store, events)
    reply = await answer(projection, PromoteCommand(prompt_id="greet", variant="b"), 10)
    assert isinstance(reply, CommandRejected) and "retired" in reply.reason
    deprecated = await answer(
        projection, LifecycleCommand(prompt_id="greet", variant="b", status="deprecated"), 12
    )
    assert isinstance(deprecated, VariantLifecycleChanged)  # tidying up a retired one is fine
    again = await answer(
        projection, LifecycleCommand(prompt_id="greet", variant="b", status="active"), 14
    )
    assert isinstance(again, CommandRejected) and "register a new version" in again.reason


async def test_a_restart_keeps_the_operators_lifecycle_and_a_new_version_takes_the_files(
    store: Store,
) -> None:
    projection = await projected(store, setup_events())
    await answer(
        projection, LifecycleCommand(prompt_id="greet", variant="b", status="archived"), 10
    )
    await projection.apply(deliveries([registered(variant="b")], start=12))  # same version
    assert (await lifecycles(store))["b"] == "archived"
    await projection.apply(deliveries([registered(variant="b", version="v-b2")], start=13))
    assert (await lifecycles(store))["b"] == "active"
    await projection.apply(deliveries([registered(variant="c", status="active")], start=14))
    assert (await lifecycles(store))["c"] == "active"  # a draft follows its file


async def test_snapshots_carry_the_lifecycle_and_the_router_follows_it(
    store: Store, tmp_path: Path
) -> None:
    (tmp_path / "greet.toml").write_text(
        """
id = "greet"
[[variables]]
name = "name"
[[variants]]
name = "a"
model = "simulated/echo"
template = "Hello {{ name }}"
champion = true
[[variants]]
name = "b"
model = "simulated/echo"
template = "Hi {{ name }}"
[[variants]]
name = "c"
model = "simulated/echo"
template = "Hey {{ name }}"
status = "draft"
"""
    )
    prompts = load_prompt_dir(tmp_path)
    router = Router(list(prompts.values()), seed=1)

    def routed(n: int = 400) -> set[str]:
        return {router.decide("greet").variant for _ in range(n)}

    assert routed() == {"a", "b"}  # the draft is never routed
    events: list[BaseEvent] = [*setup_events()]
    events += [execution(f"x{i}", variant="ab"[i % 2], seconds=i) for i in range(20)]
    events += [feedback(f"x{i}", seconds=i + 0.5) for i in range(20)]
    projection = await projected(store, events)

    async def snapshot() -> Any:
        view = await load_view(store, "greet", PromotionConfig())
        assert view is not None
        routing, stats = await build_snapshots(
            store,
            view,
            analyze(view, rng_for(1, view.last_sequence)),
            learner_sequence=view.last_sequence,
        )
        return routing, stats

    await answer(projection, LifecycleCommand(prompt_id="greet", variant="c", status="active"), 100)
    await answer(
        projection, LifecycleCommand(prompt_id="greet", variant="b", status="deprecated"), 102
    )
    routing, stats = await snapshot()
    assert {a.variant: a.lifecycle for a in routing.arms} == {
        "a": "active",
        "b": "deprecated",
        "c": "active",
    }
    assert {v.variant: v.lifecycle for v in stats.variants}["b"] == "deprecated"
    assert {v.variant: v.executions for v in stats.variants}["b"] == 10  # statistics kept
    assert router.apply_snapshot(routing)
    assert routed() == {"a", "c"}
