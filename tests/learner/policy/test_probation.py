"""Probation against a concurrent holdback, through the projection and the policy, on
SQLite and PostgreSQL: the previous champion keeps a share of traffic, the same-period
test judges the new champion, the probation ends on time and the tests are numbered."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from learner_factories import deliveries, execution, feedback, registered

from promptlab.events.models import ArmEvidence, BaseEvent, Evidence, RoutingInfo, VariantPromoted
from promptlab.learner.analysis import analyze, prompt_state, rng_for
from promptlab.learner.decide import default_policy
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.snapshots.routing import build_snapshots
from promptlab.learner.stats.sequential import msprt
from promptlab.learner.storage.store import Store
from promptlab.learner.storage.view import load_view
from promptlab.prompts.config import PromotionConfig

pytestmark = pytest.mark.asyncio

CONFIG = PromotionConfig(min_samples=50, probation_samples=600, probation_holdback=0.2)


def promoted(variant: str, previous: str) -> VariantPromoted:
    arm = ArmEvidence(variant=variant, n=0, reward_mean=0.0)
    return VariantPromoted(
        prompt_id="greet",
        variant=variant,
        previous_champion=previous,
        reason="manual",
        evidence=Evidence(challenger=arm, champion=arm),
    )


def calls(
    start: int, n: int, shares: dict[str, float], means: dict[str, float], seed: int
) -> list[BaseEvent]:
    """``n`` rewarded calls routed by ``shares`` (logged), rewarded by ``means``."""
    rng = random.Random(seed)
    names = list(shares)
    out: list[BaseEvent] = []
    for i in range(start, start + n):
        v = rng.choices(names, weights=[shares[x] for x in names])[0]
        info = RoutingInfo(probability=shares[v], exploration=v != names[0])
        out.append(execution(f"x{i}", variant=v, seconds=i, routing=info))
        out.append(feedback(f"x{i}", value=rng.random() < means[v], seconds=i + 0.5))
    return out


async def run(
    store: Store, events: list[BaseEvent], batch: int = 200, start: int = 1
) -> Projection:
    projection = Projection(
        store,
        consumer="learner",
        rewards={"greet": RewardRule(feedback="thumbs_up")},
        promotion=lambda _: CONFIG,
    )
    await projection.load()
    items = deliveries(events, start=start)
    for i in range(0, len(items), batch):
        await projection.apply(items[i : i + batch])
    return projection


async def statuses(store: Store) -> dict[str, Any]:
    return {
        v["variant"]: (v["status"], v["test_number"], v["test_start"])
        for v in await store.variant_rows("greet")
    }


async def test_tests_are_numbered_as_they_start_and_the_holdback_returns(store: Store) -> None:
    setup: list[BaseEvent] = [
        registered(variant="a", champion=True),
        registered(variant="b"),
        registered(variant="c"),
    ]
    before = calls(0, 300, {"a": 0.8, "b": 0.1, "c": 0.1}, {"a": 0.5, "b": 0.5, "c": 0.5}, 1)
    events = setup + before + [promoted("b", "a")]
    await run(store, events)
    # a is the holdback (no test), c was retested against the new champion: number 3.
    got = await statuses(store)
    assert got["a"] == ("holdback", 0, 0)
    assert got["b"][0] == "probation"
    assert got["c"] == ("challenger", 3, len(events))
    view = await load_view(store, "greet", CONFIG)
    assert view is not None
    routing, _ = await build_snapshots(
        store, view, analyze(view, rng_for(0, view.last_sequence)), learner_sequence=0
    )
    assert routing.holdback_share == 0.2
    assert {a.variant: a.status for a in routing.arms}["a"] == "holdback"
    # 600 rewarded calls later the probation is over: b is champion, a a challenger with
    # the prompt's 4th test, started at the call that ended the probation.
    during = calls(300, 600, {"b": 0.64, "a": 0.2, "c": 0.16}, {"a": 0.5, "b": 0.5, "c": 0.5}, 2)
    await run(store, during, start=len(events) + 1)
    got = await statuses(store)
    assert got["b"][0] == "champion" and got["a"][0] == "challenger"
    assert got["a"][1] == 4 and got["a"][2] == len(events) + len(during)
    row = await store.prompt_row("greet")
    assert row is not None and row["tests_started"] == 4 and row["probation_variant"] is None


async def test_a_regression_rolls_back_and_a_shared_drop_does_not(store: Store) -> None:
    setup: list[BaseEvent] = [registered(variant="a", champion=True), registered(variant="b")]
    base = calls(0, 400, {"a": 0.8, "b": 0.2}, {"a": 0.6, "b": 0.6}, 3)
    # After the forced promotion both arms drop by 0.2 together (a drift): no rollback.
    drop = calls(400, 500, {"b": 0.8, "a": 0.2}, {"a": 0.4, "b": 0.4}, 4)
    await run(store, [*setup, *base, promoted("b", "a"), *drop])
    view = await load_view(store, "greet", CONFIG)
    assert view is not None
    state = prompt_state(view)
    assert state.probation is not None and state.probation.test is not None
    assert state.probation.test.steps == 500 and state.probation_active(CONFIG)
    assert not state.probation.test.rolls_back
    # The frozen record (0.6) would call the 0.4 since the promotion a regression; the
    # same-period test does not, and nothing is decided.
    frozen = msprt(state.probation.since, state.probation.baseline)
    assert frozen.rejects(CONFIG.rollback_alpha) and frozen.lift < -0.1
    decision = default_policy(view, np.random.default_rng(0), view.last_sequence)
    assert decision is None or decision.type != "variant.rolled_back"  # type: ignore[attr-defined]


async def test_a_real_regression_is_rolled_back(store: Store) -> None:
    setup: list[BaseEvent] = [registered(variant="a", champion=True), registered(variant="b")]
    base = calls(0, 400, {"a": 0.8, "b": 0.2}, {"a": 0.6, "b": 0.6}, 5)
    worse = calls(400, 590, {"b": 0.8, "a": 0.2}, {"a": 0.7, "b": 0.35}, 6)
    await run(store, [*setup, *base, promoted("b", "a"), *worse])
    view = await load_view(store, "greet", CONFIG)
    assert view is not None
    decision = default_policy(view, np.random.default_rng(0), view.last_sequence)
    assert decision is not None and decision.type == "variant.rolled_back"  # type: ignore[attr-defined]
    assert decision.restored == "a"  # type: ignore[attr-defined]
    assert "holdback" in decision.evidence.rule  # type: ignore[attr-defined]
