"""The projection's incremental same-period tests equal the tests recomputed from the
stored rewards (``tests/support/etest_reference.py``: ``concurrent_tests`` and
``probation_test``), and do not depend on batch sizes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from etest_reference import RewardStep, concurrent_tests, probation_test
from learner_factories import deliveries, execution, feedback, registered

from promptlab.events.models import ArmEvidence, BaseEvent, Evidence, RoutingInfo, VariantPromoted
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.stats.etest import probation_steps
from promptlab.learner.storage.store import Store
from promptlab.prompts.config import PromotionConfig

pytestmark = pytest.mark.asyncio

CONFIG = PromotionConfig(min_samples=50, probation_samples=400, min_lift=0.01)


def traffic(seed: int) -> list[BaseEvent]:
    rng = random.Random(seed)
    events: list[BaseEvent] = [
        registered(variant="a", champion=True),
        registered(variant="b"),
        registered(variant="c"),
    ]
    shares = {"a": 0.8, "b": 0.1, "c": 0.1}
    means = {"a": 0.5, "b": 0.56, "c": 0.47}
    for i in range(900):
        if i == 500:
            arm = ArmEvidence(variant="b", n=0, reward_mean=0.0)
            events.append(
                VariantPromoted(
                    prompt_id="greet",
                    variant="b",
                    previous_champion="a",
                    reason="manual",
                    evidence=Evidence(challenger=arm, champion=arm),
                )
            )
            shares = {"b": 0.64, "a": 0.2, "c": 0.16}
        v = rng.choices(list(shares), weights=list(shares.values()))[0]
        routed = RoutingInfo(probability=shares[v])
        events.append(execution(f"x{i}", variant=v, seconds=i, routing=routed))
        events.append(feedback(f"x{i}", value=rng.random() < means[v], seconds=i + 0.5))
    return events


async def project(store: Store, events: list[BaseEvent], batch: int) -> None:
    projection = Projection(
        store,
        consumer="learner",
        rewards={"greet": RewardRule(feedback="thumbs_up")},
        promotion=lambda _: CONFIG,
        routing=lambda _: (0.2, 0.05),
    )
    await projection.load()
    items = deliveries(events)
    for i in range(0, len(items), batch):
        await projection.apply(items[i : i + batch])


async def test_incremental_tests_equal_the_recomputed_ones(store: Store) -> None:
    events = traffic(1)
    await project(store, events, batch=137)
    promoted_at = next(i + 1 for i, e in enumerate(events) if isinstance(e, VariantPromoted))
    steps = [RewardStep(*row) for row in await store.reward_steps("greet")]
    rows = {v["variant"]: v for v in await store.variant_rows("greet")}
    # After the promotion c's test restarted (number 3: b was 1, c 2); a was the
    # holdback until the probation's 400th call, the last one, then got test 4.
    assert (rows["c"]["test_number"], rows["c"]["test_start"]) == (3, promoted_at)
    assert rows["a"]["status"] == "challenger" and rows["a"]["test_number"] == 4
    assert rows["a"]["test_start"] == len(events)
    recomputed = concurrent_tests(
        steps,
        {"c": (3, promoted_at)},
        "b",
        alpha=CONFIG.alpha,
        min_lift=CONFIG.min_lift,
        floor=0.05,  # one challenger: min(0.05, 0.2 / 2)
    )["c"]
    state = json.loads(rows["c"]["test_state"])
    assert state[0] == recomputed.steps
    assert state[4] == pytest.approx(recomputed.max_log_wealth, rel=1e-9, abs=1e-12)
    assert state[9] == pytest.approx(recomputed.futility_max_log_wealth, rel=1e-9, abs=1e-12)
    prompt = await store.prompt_row("greet")
    assert prompt is not None
    held = probation_test(
        steps,
        promoted_at,
        "b",
        "a",
        length=probation_steps(CONFIG),
        rollback_alpha=CONFIG.rollback_alpha,
        floor=0.05,
        holdback=CONFIG.probation_holdback,
    )
    kept = json.loads(prompt["probation_test"])
    assert kept[0] == held.steps == CONFIG.probation_samples
    assert kept[4] == pytest.approx(held.max_log_wealth, rel=1e-9, abs=1e-12)


async def test_batch_sizes_do_not_change_the_tests(tmp_path: Path) -> None:
    events = traffic(2)
    states = []
    for batch in (1, 64, 5000):
        store = Store(f"sqlite+aiosqlite:///{tmp_path}/b{batch}.db")
        await store.create()
        await project(store, events, batch)
        rows = await store.variant_rows("greet")
        prompt = await store.prompt_row("greet")
        assert prompt is not None
        states.append(
            (
                {v["variant"]: (v["test_number"], v["test_state"]) for v in rows},
                prompt["probation_test"],
                prompt["base_sum"],
            )
        )
        await store.close()
    assert states[0] == states[1] == states[2]  # bit-identical, not merely close


async def test_the_tests_use_each_prompts_own_cap_and_floor(tmp_path: Path) -> None:
    """The learner passes every prompt file's routing to the projection; a wider cap
    means a higher least share, so a smaller step bound and a bigger bet."""
    from promptlab.learner.projection.reward import routing_from_prompts
    from promptlab.prompts.spec import PromptSpec

    spec = PromptSpec.model_validate(
        {
            "id": "greet",
            "routing": {"exploration_cap": 0.5, "exploration_floor": 0.2},
            "variants": [
                {"name": "a", "model": "simulated/echo", "template": "Hi"},
                {"name": "b", "model": "simulated/echo", "template": "Hello"},
            ],
        }
    )
    routing = routing_from_prompts({"greet": spec})
    assert routing("greet") == (0.5, 0.2) and routing("other") is None
    states = []
    for given in (routing, None):
        store = Store(f"sqlite+aiosqlite:///{tmp_path}/{'own' if given else 'default'}.db")
        await store.create()
        projection = Projection(
            store,
            consumer="learner",
            rewards={"greet": RewardRule(feedback="thumbs_up")},
            promotion=lambda _: CONFIG,
            routing=given,
        )
        await projection.load()
        assert projection.routing("greet") == ((0.5, 0.2) if given else (0.2, 0.05))
        events = [e for e in traffic(3) if not isinstance(e, VariantPromoted)][:400]
        await projection.apply(deliveries(events))
        rows = {v["variant"]: v for v in await store.variant_rows("greet")}
        states.append(json.loads(rows["b"]["test_state"]))
        await store.close()
    # Same steps, other bounds: the bets (and so the wealth) differ.
    assert states[0][0] == states[1][0] and states[0][3] != states[1][3]
