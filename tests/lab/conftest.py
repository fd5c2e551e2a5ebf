"""Fixtures of the lab tests: the model+judge fake upstream and Providers pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from lab_upstream import LabUpstream

from providers import Providers, ProviderSettings

PRICES = {"fake/cheap": (1e-6, 2e-6), "fake/pricey": (1e-5, 3e-5), "fake/judge": (1e-6, 1e-6)}
"""USD per prompt token and per completion token, by model."""


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    p = PRICES.get(model)
    return None if p is None else prompt_tokens * p[0] + completion_tokens * p[1]


@pytest.fixture
async def upstream() -> AsyncIterator[LabUpstream]:
    fake = LabUpstream()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def providers(upstream: LabUpstream) -> AsyncIterator[Providers]:
    settings = {"fake": ProviderSettings(kind="openai", api_base=upstream.base_url, max_retries=0)}
    async with Providers(settings, cost=price) as p:
        yield p
