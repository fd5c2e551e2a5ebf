"""Fixtures of the lab tests: the model+judge fake upstream and Providers pointed at it.

Imported by the test modules that use them (not a conftest.py: other test directories
import their ``conftest`` by name, and a second module of that name would shadow theirs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from lab_upstream import LabUpstream, price

from promptlab.providers import Providers, ProviderSettings


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
