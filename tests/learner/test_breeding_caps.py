"""Breeding's daily caps live in the bus's KV: a new breeder (a restart) goes on with the
day's counts, a new UTC day starts afresh, and every call is booked, failed ones too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from promptlab.events.memory import MemoryBus
from promptlab.learner.breeding_caps import BreedingCaps, CountingClient
from promptlab.learner.config import EvolutionSettings

DAY = 1_796_601_600.0  # 2026-12-07 00:00 UTC


@dataclass
class Answer:
    data: dict[str, Any]
    latency_ms: float = 1.0
    prompt_tokens: int = 10
    completion_tokens: int = 5
    cost_usd: float | None = 0.25


class Model:
    """A model client that answers, or fails once told to."""

    def __init__(self) -> None:
        self.fail = False

    async def complete(
        self, model: str, body: dict[str, Any], *, timeout_s: float | None = None
    ) -> Answer:
        if self.fail:
            raise RuntimeError("upstream down")
        return Answer({"choices": []})


async def test_the_day_s_counts_survive_a_new_breeder_and_reset_the_next_day(
    memory_bus: MemoryBus,
) -> None:
    settings = EvolutionSettings(max_mutants_per_day=2, max_usd_per_day=1.0)
    now = [DAY + 3600]
    first = BreedingCaps(settings, memory_bus, clock=lambda: now[0])
    assert await first.allows("p") and await first.reserve("p")
    assert await first.reserve("p")
    assert not await first.allows("p")
    assert await first.allows("q")  # per prompt

    restarted = BreedingCaps(settings, memory_bus, clock=lambda: now[0])
    assert not await restarted.allows("p")
    now[0] += 86_400
    assert await restarted.allows("p")
    assert restarted.book.day == "2026-12-08" and restarted.book.mutants == {}


async def test_every_call_is_booked_and_the_spend_cap_holds_after_a_restart(
    memory_bus: MemoryBus,
) -> None:
    settings = EvolutionSettings(max_mutants_per_day=100, max_usd_per_day=0.5)
    caps = BreedingCaps(settings, memory_bus, clock=lambda: DAY)
    model = Model()
    client = CountingClient(model, caps)
    await client.complete("m/x", {})
    model.fail = True
    with pytest.raises(RuntimeError):
        await client.complete("m/x", {})
    assert caps.book.calls == 2 and caps.book.spend_usd == 0.25
    assert await caps.allows("p")
    model.fail = False
    await client.complete("m/x", {})
    restarted = BreedingCaps(settings, memory_bus, clock=lambda: DAY)
    assert not await restarted.allows("p")
    assert restarted.book.calls == 3 and restarted.book.spend_usd == 0.5


async def test_no_count_no_breeding(memory_bus: MemoryBus) -> None:
    caps = BreedingCaps(EvolutionSettings(), memory_bus, clock=lambda: DAY)
    memory_bus.set_available(False)
    assert not await caps.reserve("p")
    memory_bus.set_available(True)
    assert await caps.reserve("p")
    assert caps.book.mutants == {"p": 1}
