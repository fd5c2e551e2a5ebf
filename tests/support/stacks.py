"""One process's whole stack, for end-to-end tests: sidecar + learner + a real
nats-server + an OpenAI-compatible fake upstream over HTTP (provider ``fake``), with the
prompts and learner settings a test gives; the breeder too when it asks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

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
from promptlab.providers import Providers
from promptlab.sidecar.app import create_app
from promptlab.sidecar.config import (
    ProviderSettings,
    ServerSettings,
    TelemetrySettings,
    default_providers,
)
from promptlab.sidecar.ports import SidecarConfig

E = TypeVar("E")


class Upstream(Protocol):
    """A fake upstream: :class:`FakeUpstream` or one of a test's own."""

    @property
    def base_url(self) -> str: ...

    async def start(self) -> str: ...

    async def stop(self) -> None: ...


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
    upstream: Upstream | None = None,
    provider: Mapping[str, Any] | None = None,
    breeder: bool = False,
) -> AsyncIterator[Stack]:
    """The stack on free loopback ports. ``upstream``: default a :class:`FakeUpstream`
    that echoes; ``provider``: more settings of provider ``fake``; ``breeder``: the
    learner breeds, calling the upstream through its own client."""
    upstream = upstream or FakeUpstream(record=False)
    await upstream.start()
    fake = ProviderSettings(kind="openai", api_base=upstream.base_url, **(provider or {}))
    bus = JetStreamBus(url=nats.url)
    await bus.start()
    publisher = EventPublisher(bus, tmp_path / "outbox")
    settings = SidecarConfig(
        server=ServerSettings(),
        providers={**default_providers(), "fake": fake},
        telemetry=TelemetrySettings(),
    )
    specs = dict(prompts)
    app = create_app(settings, prompts=specs, publisher=publisher, bus=bus, router_seed=router_seed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    learner = Learner(
        learner_settings,
        StorageSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}"),
        bus,
        specs,
    )
    async with AsyncExitStack() as running:
        if breeder:
            learner.attach_breeder(await running.enter_async_context(Providers({"fake": fake})))
        await running.enter_async_context(learner)
        yield Stack(f"http://127.0.0.1:{runner.addresses[0][1]}/v1", bus, learner, publisher)
    await runner.cleanup()
    await bus.close()
    await upstream.stop()
