"""End to end: sidecar + learner + a real nats-server + a real fake upstream over HTTP.

Simulated users (labelled, hidden quality per variant) send feedback through the public
API. When one variant is truly better, the learner promotes it and the sidecar's routing
follows; when the variants are equal, nothing is promoted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from fake_upstream import FakeUpstream

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.models import VariantPromoted
from promptlab.events.publisher import EventPublisher
from promptlab.events.snapshots import RoutingSnapshot
from promptlab.events.subjects import Bucket
from promptlab.lab.traffic import SimulatedUsers, TrafficReport, run_traffic
from promptlab.learner.config import LearnerSettings, StorageSettings
from promptlab.learner.service import Learner
from promptlab.prompts import PromptSpec
from promptlab.sidecar.app import create_app
from promptlab.sidecar.config import (
    ProviderSettings,
    ServerSettings,
    TelemetrySettings,
    default_providers,
)
from promptlab.sidecar.ports import SidecarConfig

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


@dataclass
class Stack:
    base_url: str
    bus: JetStreamBus
    learner: Learner
    publisher: EventPublisher

    async def promotions(self) -> list[VariantPromoted]:
        return [e async for _, e, _ in self.bus.read(1) if isinstance(e, VariantPromoted)]

    async def routing(self) -> RoutingSnapshot | None:
        entry = await self.bus.kv_get(Bucket.ROUTING.value, PROMPT_ID)
        return RoutingSnapshot.decode(entry.value) if entry and entry.value else None


@pytest.fixture
async def stack(tmp_path: Path, nats_server: NatsServerProcess) -> AsyncIterator[Stack]:
    upstream = FakeUpstream(record=False)
    await upstream.start()
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    publisher = EventPublisher(bus, tmp_path / "outbox")
    settings = SidecarConfig(
        server=ServerSettings(),
        providers={
            **default_providers(),
            "fake": ProviderSettings(kind="openai", api_base=upstream.base_url),
        },
        telemetry=TelemetrySettings(),
    )
    prompts = {PROMPT_ID: two_variant_prompt()}
    app = create_app(settings, prompts=prompts, publisher=publisher, bus=bus, router_seed=11)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    learner = Learner(
        LearnerSettings(snapshot_interval_ms=50, seed=3),
        StorageSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}"),
        bus,
        prompts,
    )
    async with learner:
        yield Stack(f"http://127.0.0.1:{runner.addresses[0][1]}/v1", bus, learner, publisher)
    await runner.cleanup()
    await bus.close()
    await upstream.stop()


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
    await stack.publisher.flush(10.0)
    await stack.learner.caught_up(timeout=20.0)
    await asyncio.sleep(0.3)  # a decision published by the last batch comes back


async def test_truly_better_variant_is_promoted_and_routing_follows(stack: Stack) -> None:
    quality = {"a": 0.35, "b": 0.75}
    first = await _send(stack, quality, requests=1200, seed=1)
    assert first.errors == 0
    await _settle(stack)

    promotions = await stack.promotions()
    assert [(p.variant, p.previous_champion, p.reason) for p in promotions] == [("b", "a", "auto")]
    evidence = promotions[0].evidence
    assert evidence is not None
    assert evidence.p_better is not None and evidence.p_better >= 0.95
    assert evidence.p_value is not None and evidence.p_value <= 0.05
    assert evidence.challenger.n >= 120 and evidence.champion.n >= 120
    assert evidence.challenger.reward_mean > evidence.champion.reward_mean

    snapshot = await stack.routing()
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
    assert await stack.promotions() == []
    snapshot = await stack.routing()
    assert snapshot is not None and snapshot.champion == "a"
    assert {arm.variant for arm in snapshot.arms} == {"a", "b"}
