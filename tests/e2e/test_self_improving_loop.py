"""End to end: sidecar + learner + a real nats-server + a real fake upstream over HTTP.

Simulated users (labelled, hidden quality per variant) send feedback through the public
API. When one variant is truly better, the learner promotes it and the sidecar's routing
follows; when the variants are equal, nothing is promoted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from stacks import Stack, running_stack

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.models import VariantPromoted
from promptlab.lab.traffic import SimulatedUsers, TrafficReport, run_traffic
from promptlab.learner.config import LearnerSettings
from promptlab.prompts import PromptSpec

PROMPT_ID = "answer"


def two_variant_prompt() -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": PROMPT_ID,
            "variables": [{"name": "q", "type": "string", "required": True}],
            "reward": {"feedback": "thumbs_up"},
            "routing": {"strategy": "thompson", "exploration_cap": 0.3, "sticky": False},
            "promotion": {"min_samples": 120, "probation_samples": 100},
            "variants": [
                {
                    "name": "a",
                    "model": "fake/model-a",
                    "template": "Answer: {{ q }}",
                    "champion": True,
                },
                {
                    "name": "b",
                    "model": "fake/model-b",
                    "system": "Be helpful.",
                    "template": "Q: {{ q }}",
                },
            ],
        }
    )


@pytest.fixture
async def stack(tmp_path: Path, nats_server: NatsServerProcess) -> AsyncIterator[Stack]:
    prompts = {PROMPT_ID: two_variant_prompt()}
    settings = LearnerSettings(snapshot_interval_ms=50, seed=3)
    async with running_stack(tmp_path, nats_server, prompts, settings, router_seed=11) as stack:
        yield stack


async def _send(stack: Stack, quality: dict[str, float], requests: int, seed: int) -> TrafficReport:
    return await run_traffic(
        stack.base_url,
        PROMPT_ID,
        SimulatedUsers(quality),
        requests=requests,
        concurrency=8,
        seed=seed,
        variables=lambda rng, i: {"q": f"question {i}"},
    )


async def _settle(stack: Stack) -> None:
    await stack.settle()
    await asyncio.sleep(0.3)  # a decision published by the last batch comes back


async def test_truly_better_variant_is_promoted_and_routing_follows(stack: Stack) -> None:
    quality = {"a": 0.35, "b": 0.75}
    first = await _send(stack, quality, requests=1200, seed=1)
    assert first.errors == 0
    await _settle(stack)

    promotions = await stack.events(VariantPromoted)
    assert [(p.variant, p.previous_champion, p.reason) for p in promotions] == [("b", "a", "auto")]
    evidence = promotions[0].evidence
    assert evidence is not None
    assert evidence.p_better is not None and evidence.p_better >= 0.95
    assert evidence.p_value is not None and evidence.p_value <= 0.05
    assert evidence.challenger.n >= 120 and evidence.champion.n >= 120
    assert evidence.challenger.reward_mean > evidence.champion.reward_mean

    snapshot = await stack.routing(PROMPT_ID)
    assert snapshot is not None and snapshot.champion == "b"

    # The sidecar follows the snapshot: the new champion now gets most of the traffic.
    for _ in range(50):
        after = await _send(stack, quality, requests=300, seed=2)
        if after.share("b") >= 0.65:
            break
        await asyncio.sleep(0.1)
    assert after.share("b") >= 0.65, after.by_variant


async def test_equal_variants_are_not_promoted(stack: Stack) -> None:
    report = await _send(stack, {"a": 0.5, "b": 0.5}, requests=1500, seed=5)
    assert report.errors == 0 and report.ok == 1500
    await _settle(stack)
    assert await stack.events(VariantPromoted) == []
    snapshot = await stack.routing(PROMPT_ID)
    assert snapshot is not None and snapshot.champion == "a"
    assert {arm.variant for arm in snapshot.arms} == {"a", "b"}
