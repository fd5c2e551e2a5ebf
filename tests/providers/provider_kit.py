"""What the providers tests share: a test key, provider settings with fast retries, and
the fixtures ``raw_upstream`` and ``make_providers``.

No conftest.py here: the sidecar tests import ``conftest`` by name, and a second one
would shadow theirs. Test modules import the fixtures from this module instead."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from raw_upstream import RawUpstream

from promptlab.providers import Providers, ProviderSettings

KEY = "sk-test-PROVIDERKEY-0123456789"
KEY_ENV = "PROMPTLAB_TEST_PROVIDER_KEY"

MakeProviders = Callable[..., Awaitable[Providers]]
"""``await make_providers(name=ProviderSettings, ...)``"""


def settings(api_base: str, **overrides: Any) -> ProviderSettings:
    """A provider on ``api_base`` with fast retries (for tests)."""
    return ProviderSettings(
        **{
            "kind": "openai",
            "api_base": api_base,
            "api_key_env": KEY_ENV,
            "max_retries": 2,
            "retry_backoff_s": 0.01,
            "retry_backoff_max_s": 0.02,
            "timeout_s": 5.0,
            **overrides,
        }
    )


BODY = {"messages": [{"role": "user", "content": "hi"}]}


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
