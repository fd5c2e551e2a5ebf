"""Continuous breeding end to end: sidecar + learner + breeder + real nats-server + HTTP fakes.

The fake upstream is mutator, model and judge (SIMULATED, ``evolution_upstream``). The
simulated users' thumbs-up rate depends on the prompt text a variant carries (the
features of ``bench.evolution_task``), so a bred variant can be truly better.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from evolution_upstream import EvolutionUpstream
from stacks import Stack, running_stack

from bench.evolution_task import CASES, case_quality
from promptlab.events.embedded import NatsServerProcess
from promptlab.events.models import VariantPromoted, VariantRegistered
from promptlab.events.subjects import Bucket
from promptlab.lab.traffic import SimulatedUsers, TrafficReport, run_traffic
from promptlab.learner.config import EvolutionSettings, LearnerSettings
from promptlab.prompts import PromptSpec, VariantSpec

PROMPT_ID = "summarize"
ALL_FEATURES = (
    "You are a senior engineer.",
    "Summarize this code: Answer in numbered steps. Reply as JSON with keys purpose and logic. "
    "Example: for a sort function, say what order it sorts in. Mention the edge cases.\n{{ code }}",
)


def prompt(system: str | None, template: str) -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": PROMPT_ID,
            "variables": [{"name": "code", "type": "string", "required": True}],
            "routing": {"strategy": "thompson", "exploration_cap": 0.5, "sticky": False},
            "promotion": {"min_samples": 60, "probation_samples": 50},
            "examples": [{"name": c, "variables": {"code": c}} for c in CASES],
            "variants": [
                {
                    "name": "v1",
                    "model": "fake/model",
                    "system": system,
                    "template": template,
                    "champion": True,
                }
            ],
        }
    )


@dataclass(frozen=True)
class TextUsers(SimulatedUsers):
    """SIMULATED users: P(thumbs up) = 0.2 + 0.7 x the prompt text's simulated quality."""

    lookup: Callable[[str], VariantSpec | None] = lambda name: None

    def of(self, variant: str) -> float:
        spec = self.lookup(variant)
        if spec is None:
            return self.default_quality
        q = sum(case_quality(spec.system, spec.template, c)[0] for c in CASES) / len(CASES)
        return 0.2 + 0.7 * q


async def send(stack: Stack, requests: int, seed: int) -> TrafficReport:
    """Calls from :class:`TextUsers` that judge the variants' texts as the breeder knows them."""
    assert stack.learner.breeder is not None
    known = stack.learner.breeder.known[PROMPT_ID]
    report = await run_traffic(
        stack.base_url,
        PROMPT_ID,
        TextUsers({}, lookup=known.get),
        requests=requests,
        concurrency=8,
        seed=seed,
        variables=lambda rng, i: {"code": list(CASES)[i % len(CASES)]},
    )
    assert report.errors == 0
    await stack.publisher.flush(10.0)
    return report


def make_stack(
    tmp_path: Path, nats_server: NatsServerProcess, spec: PromptSpec, mode: str, **overrides: Any
) -> AbstractAsyncContextManager[Stack]:
    evolution = EvolutionSettings(
        enabled=True,
        mutator="fake/mutator",
        judge="fake/judge",
        population=1,
        min_champion_samples=30,
        interval_s=0.2,
        repeats=1,
        strategies=[
            "add_structure",
            "change_format",
            "change_persona",
            "add_examples",
            "add_constraints",
            "reflect",
        ],
        **overrides,
    )
    return running_stack(
        tmp_path,
        nats_server,
        {PROMPT_ID: spec},
        LearnerSettings(snapshot_interval_ms=50, seed=3, evolution=evolution),
        router_seed=5,
        upstream=EvolutionUpstream(mutator_mode=mode),
        provider={"max_retries": 0},
        breeder=True,
    )


@pytest.fixture
async def weak_champion(tmp_path: Path, nats_server: NatsServerProcess) -> AsyncIterator[Stack]:
    async with make_stack(
        tmp_path, nats_server, prompt(None, "Summarize: {{ code }}"), "simulated"
    ) as stack:
        yield stack


@pytest.fixture
async def strong_champion(tmp_path: Path, nats_server: NatsServerProcess) -> AsyncIterator[Stack]:
    async with make_stack(
        tmp_path, nats_server, prompt(*ALL_FEATURES), "worse", max_mutants_per_day=1
    ) as stack:
        yield stack


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float, step: Callable[[], Awaitable[None]]
) -> None:
    """Run ``step`` (more traffic) until ``check`` holds, within ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await step()


async def test_a_bred_challenger_competes_live_and_is_promoted_when_truly_better(
    weak_champion: Stack,
) -> None:
    stack = weak_champion
    rounds = iter(range(1, 1000))

    async def traffic() -> None:
        await send(stack, 150, seed=next(rounds))

    async def promoted() -> bool:
        return any(isinstance(e, VariantPromoted) for e in await stack.events(object))

    await wait_until(promoted, 90.0, traffic)
    events = await stack.events(object)
    [promotion] = [e for e in events if isinstance(e, VariantPromoted)]
    registered = [e for e in events if isinstance(e, VariantRegistered)]
    bred = {e.variant: e for e in registered if e.origin == "mutation" and e.source == "live"}
    assert promotion.variant in bred and promotion.previous_champion == "v1"
    winner = bred[promotion.variant]
    assert winner.parents and winner.strategy and winner.generation
    assert winner.offline_check is not None and winner.offline_check["passed"]
    # Every bred variant has its offline record, checks and lineage included.
    offline = {e.variant for e in registered if e.source == "offline"}
    assert set(bred) <= offline
    # The promoted variant really took traffic through the sidecar before it won.
    assert promotion.evidence is not None and promotion.evidence.challenger.n >= 60
    entry = await stack.bus.kv_get(str(Bucket.VARIANTS), f"{PROMPT_ID}.{promotion.variant}")
    assert entry is not None and entry.value


async def test_a_mutant_significantly_worse_offline_never_enters_traffic(
    strong_champion: Stack,
) -> None:
    stack = strong_champion
    breeder = stack.learner.breeder
    assert breeder is not None
    await send(stack, 60, seed=1)

    async def bred() -> bool:
        return bool(breeder.outcomes)

    async def more() -> None:
        await send(stack, 20, seed=2)

    await wait_until(bred, 30.0, more)
    outcome = breeder.outcomes[0]
    assert not outcome.accepted and outcome.check is not None
    assert outcome.check["significant"] and outcome.check["mean_diff"] < 0
    assert outcome.reason.startswith("significantly worse than v1")
    report = await send(stack, 40, seed=3)
    assert set(report.by_variant) == {"v1"}
    registered = [e for e in await stack.events(object) if isinstance(e, VariantRegistered)]
    assert [e.source for e in registered if e.origin == "mutation"] == ["offline"]
    assert await stack.bus.kv_keys(str(Bucket.VARIANTS)) == [f"{PROMPT_ID}.v1"]  # the file's
    # max_mutants_per_day = 1: the prompt still lacks a challenger, but breeding waits.
    assert await breeder.breed_once(PROMPT_ID) is None
    assert len(breeder.outcomes) == 1
