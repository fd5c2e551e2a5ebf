"""The end-to-end stack the e2e tests share: sidecar + learner + a real nats-server + the
fake upstream over HTTP, with the prompts a test gives (provider ``fake``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from fake_upstream import FakeUpstream

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.publisher import EventPublisher
from promptlab.events.snapshots import RoutingSnapshot
from promptlab.events.subjects import Bucket
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

E = TypeVar("E")


@dataclass
class Stack:
    base_url: str
    bus: JetStreamBus
    learner: Learner
    publisher: EventPublisher

    async def events(self, kind: type[E]) -> list[E]:
        """Every event of ``kind`` in the stream, oldest first."""
        return [e async for _, e, _ in self.bus.read(1) if isinstance(e, kind)]

    async def routing(self, prompt_id: str) -> RoutingSnapshot | None:
        """The routing snapshot the sidecar follows for ``prompt_id``."""
        entry = await self.bus.kv_get(Bucket.ROUTING.value, prompt_id)
        return RoutingSnapshot.decode(entry.value) if entry and entry.value else None

    async def settle(self) -> None:
        """Every event published and applied by the learner."""
        await self.publisher.flush(10.0)
        await self.learner.caught_up(timeout=20.0)


@asynccontextmanager
async def running_stack(
    tmp_path: Path,
    nats: NatsServerProcess,
    prompts: Mapping[str, PromptSpec],
    learner_settings: LearnerSettings,
    *,
    router_seed: int,
    reply: Callable[[dict[str, Any]], str] | None = None,
) -> AsyncIterator[Stack]:
    """The stack on free loopback ports; ``reply`` words the fake upstream's answers."""
    upstream = FakeUpstream(record=False, reply=reply)
    await upstream.start()
    bus = JetStreamBus(url=nats.url)
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
    specs = dict(prompts)
    app = create_app(settings, prompts=specs, publisher=publisher, bus=bus, router_seed=router_seed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    learner = Learner(
        learner_settings,
        StorageSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}"),
        bus,
        specs,
    )
    async with learner:
        yield Stack(f"http://127.0.0.1:{runner.addresses[0][1]}/v1", bus, learner, publisher)
    await runner.cleanup()
    await bus.close()
    await upstream.stop()
