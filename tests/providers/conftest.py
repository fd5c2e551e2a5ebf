"""Fixtures for the providers tests: scripted upstreams on loopback and a Providers factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from provider_kit import KEY, KEY_ENV, MakeProviders
from raw_upstream import RawUpstream

from providers import Providers, ProviderSettings


@pytest.fixture
async def raw_upstream() -> AsyncIterator[RawUpstream]:
    server = RawUpstream()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_providers() -> AsyncIterator[MakeProviders]:
    """``await make_providers(name=ProviderSettings, ...)``: started, closed after the test."""
    started: list[Providers] = []

    async def make(**providers: ProviderSettings) -> Providers:
        p = Providers(providers, environ={KEY_ENV: KEY})
        await p.start()
        started.append(p)
        return p

    yield make
    for p in started:
        await p.close()
