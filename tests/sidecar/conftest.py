"""A running sidecar on a free port, in front of a real fake upstream, on a real bus.

``make_sidecar(...)`` starts one (JetStream on this test's own nats-server by default,
on a given server with ``nats_url=`` so that replicas share it, or the in-memory bus
with ``bus="memory"``); ``harness.events()`` flushes the publisher and reads every
event back from the bus; ``harness.stop()`` stops it before the test ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from fake_upstream import FakeUpstream

from promptlab.events.bus import EventBus
from promptlab.events.embedded import NatsServerProcess
from promptlab.events.memory import MemoryBus
from promptlab.events.models import BaseEvent
from promptlab.events.publisher import EventPublisher
from promptlab.prompts import PromptSpec
from promptlab.sidecar import keys
from promptlab.sidecar.app import create_app
from promptlab.sidecar.config import (
    ProviderSettings,
    ServerSettings,
    TelemetrySettings,
    default_providers,
)
from promptlab.sidecar.feedback import FeedbackPolicy
from promptlab.sidecar.ports import AnalyticsSource, HistorySource, SidecarConfig

SECRET = "sk-test-SECRET-0123456789abcdef"
"""The fake provider key: it must reach the upstream and nothing else."""
KEY_ENV = "PROMPTLAB_TEST_FAKE_KEY"


def summarize_prompt(**routing: Any) -> PromptSpec:
    """Two variants on the fake upstream; ``routing`` overrides the [routing] table."""
    return PromptSpec.model_validate(
        {
            "id": "summarize",
            "description": "Summarize code",
            "variables": [
                {"name": "code", "type": "string", "required": True, "max_length": 200},
                {"name": "language", "type": "string", "default": "python"},
            ],
            "routing": {"strategy": "thompson", "exploration_cap": 0.2, "sticky": True, **routing},
            "variants": [
                {
                    "name": "v1",
                    "model": "fake/model-a",
                    "template": "Summarize: {{ code }}",
                    "champion": True,
                },
                {
                    "name": "v2",
                    "model": "fake/model-b",
                    "system": "You are terse.",
                    "template": "TL;DR ({{ language }}): {{ code }}",
                    "params": {"temperature": 0.1, "max_tokens": 50},
                },
            ],
        }
    )


def simulated_prompt() -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "greet",
            "variables": [{"name": "name", "type": "string", "required": True}],
            "variants": [
                {"name": "hello", "model": "simulated/alpha", "template": "Say hello to {{ name }}"}
            ],
        }
    )


@dataclass
class Harness:
    """A started sidecar and what it talks to."""

    url: str
    app: web.Application
    bus: EventBus
    publisher: EventPublisher
    upstream: FakeUpstream
    runner: web.AppRunner | None = None
    _clients: list[Any] = field(default_factory=list)

    async def stop(self) -> None:
        """Stop serving now (a restart, a replica that goes away); idempotent."""
        await self.aclose()
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def client(self, api_key: str = "unused", **kwargs: Any) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=api_key, max_retries=0, **kwargs
        )
        self._clients.append(client)
        return client

    def sync_client(self, api_key: str = "unused", **kwargs: Any) -> openai.OpenAI:
        client = openai.OpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, **kwargs)
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            if isinstance(client, openai.AsyncOpenAI):
                await client.close()
            else:
                client.close()

    async def events(self, type: str | None = None) -> list[BaseEvent]:
        """Every event on the bus (after a publisher flush), optionally of one type."""
        await self.publisher.flush()
        out = [event async for _, event, _ in self.bus.read(1) if event is not None]
        return [e for e in out if type is None or getattr(e, "type", None) == type]

    async def wait_events(self, type: str, count: int, timeout: float = 5.0) -> list[BaseEvent]:
        """Events of ``type`` once there are at least ``count`` of them."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = await self.events(type)
            if len(found) >= count or asyncio.get_running_loop().time() > deadline:
                return found
            await asyncio.sleep(0.02)


MakeSidecar = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream()
    await upstream.start()
    yield upstream
    await upstream.stop()


@pytest.fixture
async def make_sidecar(
    tmp_path: Path, fake_upstream: FakeUpstream, request: pytest.FixtureRequest
) -> AsyncIterator[MakeSidecar]:
    """Start sidecars; everything is stopped after the test."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def make(
        *,
        prompts: list[PromptSpec] | None = None,
        server: dict[str, Any] | None = None,
        providers: dict[str, dict[str, Any]] | None = None,
        telemetry: dict[str, Any] | None = None,
        bus: str = "jetstream",
        router_seed: int | None = 7,
        feedback_policy: FeedbackPolicy | None = None,
        analytics: AnalyticsSource | None = None,
        history: HistorySource | None = None,
        nats_url: str | None = None,
    ) -> Harness:
        event_bus: EventBus
        if bus == "memory":
            event_bus = MemoryBus()
        else:
            from promptlab.events.jetstream import JetStreamBus

            if nats_url is None:  # a server of its own; else share the one given (replicas)
                nats = NatsServerProcess(tmp_path / f"nats-{len(cleanups)}")
                nats.start()
                cleanups.append(lambda: asyncio.to_thread(nats.stop))
                nats_url = nats.url
            event_bus = JetStreamBus(url=nats_url)
        await event_bus.start()
        cleanups.append(event_bus.close)
        fake = {
            "kind": "openai",
            "api_base": fake_upstream.base_url,
            "api_key_env": KEY_ENV,
            "max_retries": 2,
            "retry_backoff_s": 0.01,
            "retry_backoff_max_s": 0.05,
        }
        provider_cfg = {**default_providers(), "fake": ProviderSettings(**fake)}
        for name, cfg in (providers or {}).items():
            provider_cfg[name] = ProviderSettings(**{**fake, **cfg})
        settings = SidecarConfig(
            server=ServerSettings(**(server or {})),
            providers=provider_cfg,
            telemetry=TelemetrySettings(**(telemetry or {})),
        )
        publisher = EventPublisher(event_bus, tmp_path / f"outbox-{len(cleanups)}")
        specs = prompts if prompts is not None else [summarize_prompt(), simulated_prompt()]
        app = create_app(
            settings,
            prompts={p.id: p for p in specs},
            publisher=publisher,
            bus=event_bus,
            router_seed=router_seed,
            environ={KEY_ENV: SECRET},
            feedback_policy=feedback_policy,
        )
        if analytics is not None:
            app[keys.ANALYTICS] = analytics
        if history is not None:
            app[keys.HISTORY] = history
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        harness = Harness(
            f"http://127.0.0.1:{port}", app, event_bus, publisher, fake_upstream, runner
        )
        cleanups.append(harness.stop)
        return harness

    yield make
    for cleanup in reversed(cleanups):
        await cleanup()
