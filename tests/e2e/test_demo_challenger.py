"""End to end: the automatic demonstration challenger, through the real HTTP path.

Sidecar + learner + a real nats-server + the fake upstream. The prompt captures its calls
and has ``[learning] demos``; SIMULATED users (labelled as such, seeded) give a thumbs-up
to an answer with a probability that depends on the answer. The fake upstream answers
``good`` when the request carries demonstrations (prior assistant turns) and ``plain``
otherwise, or ``plain`` always: then demonstrations do not help. Thumbs-up answers fill
the pool; once it holds ``min_pool`` of them the learner registers ``base+demos``, which
is promoted only when it is better.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import openai
import pytest
from fake_upstream import FakeUpstream
from stacks import Stack, running_stack

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.models import ExecutionCompleted, VariantPromoted, VariantRegistered
from promptlab.learner.config import LearnerSettings
from promptlab.prompts import PromptSpec

PROMPT_ID = "label"
CHALLENGER = "base+demos"
P_GOOD, P_PLAIN = 0.8, 0.35
"""P(thumbs-up) a simulated user gives a ``good`` and a ``plain`` answer."""


def prompt() -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": PROMPT_ID,
            "variables": [{"name": "text", "type": "string", "required": True}],
            "reward": {"feedback": "thumbs_up"},
            "routing": {"strategy": "thompson", "exploration_cap": 0.4, "sticky": False},
            "promotion": {"min_samples": 100, "probation_samples": 50},
            "learning": {"capture": True, "demos": {"k": 2, "min_pool": 20}},
            "variants": [{"name": "base", "model": "fake/m", "template": "Label: {{ text }}"}],
        }
    )


def helped_by_demos(body: dict[str, Any]) -> str:
    shown = any(m.get("role") == "assistant" for m in body.get("messages") or [])
    return "good" if shown else "plain"


@pytest.fixture
async def helpful(tmp_path: Path, nats_server: NatsServerProcess) -> AsyncIterator[Stack]:
    async with _stack(tmp_path, nats_server, helped_by_demos) as stack:
        yield stack


@pytest.fixture
async def useless(tmp_path: Path, nats_server: NatsServerProcess) -> AsyncIterator[Stack]:
    async with _stack(tmp_path, nats_server, lambda body: "plain") as stack:
        yield stack


def _stack(
    tmp_path: Path, nats: NatsServerProcess, reply: Callable[[dict[str, Any]], str]
) -> AbstractAsyncContextManager[Stack]:
    settings = LearnerSettings(snapshot_interval_ms=50, seed=3, demos_interval_s=0.1)
    upstream = FakeUpstream(record=False, reply=reply)
    return running_stack(
        tmp_path, nats, {PROMPT_ID: prompt()}, settings, router_seed=5, upstream=upstream
    )


async def traffic(stack: Stack, calls: int, seed: int, served: dict[str, int]) -> None:
    """``calls`` routed calls, each with a simulated user's thumbs-up or -down."""
    client = openai.AsyncOpenAI(base_url=stack.base_url, api_key="x", max_retries=0)
    numbers = iter(range(calls))

    async def worker() -> None:
        for i in numbers:
            rng = random.Random(f"{seed}:{i}")
            raw = await client.chat.completions.with_raw_response.create(
                model=f"promptlab/{PROMPT_ID}",
                messages=[],
                extra_body={"promptlab": {"variables": {"text": f"item {rng.randrange(50)}"}}},
            )
            completion = raw.parse()
            variant = raw.headers["x-promptlab-variant"]
            served[variant] = served.get(variant, 0) + 1
            answer = completion.choices[0].message.content
            liked = rng.random() < (P_GOOD if answer == "good" else P_PLAIN)
            await client.post(
                "/feedback",
                cast_to=object,
                body={"execution_id": completion.id, "name": "thumbs_up", "value": liked},
            )

    try:
        await asyncio.gather(*(worker() for _ in range(6)))
    finally:
        await client.close()


async def until_registered(stack: Stack, served: dict[str, int]) -> VariantRegistered:
    """Send traffic until the challenger is registered and the sidecar routes to it."""
    for wave in range(40):
        await traffic(stack, 40, seed=100 + wave, served=served)
        registered = [e for e in await stack.events(VariantRegistered) if e.variant == CHALLENGER]
        if registered and served.get(CHALLENGER):
            return registered[0]
    raise AssertionError(f"no {CHALLENGER} registered and served: {served}")


async def test_a_demonstration_challenger_that_helps_is_registered_and_promoted(
    helpful: Stack,
) -> None:
    served: dict[str, int] = {}
    event = await until_registered(helpful, served)
    assert (event.origin, event.parent, event.parents, event.strategy) == (
        "demos", "base", ["base"], "demos",
    )  # fmt: skip
    assert event.demos is not None and event.demos["pool"] == "production"
    assert event.template == prompt().champion.template

    promoted: list[VariantPromoted] = []
    for wave in range(30):
        await traffic(helpful, 100, seed=wave, served=served)
        await helpful.settle()
        promoted = [p for p in await helpful.events(VariantPromoted) if p.variant == CHALLENGER]
        if promoted:
            break
    assert promoted, served
    evidence = promoted[0].evidence
    assert evidence is not None and evidence.challenger.reward_mean > evidence.champion.reward_mean
    shown = [
        e for e in await helpful.events(ExecutionCompleted)
        if e.variant == CHALLENGER and e.demos
    ]  # fmt: skip
    assert shown and all(len(e.demos or []) == 2 for e in shown)


async def test_a_demonstration_challenger_that_does_not_help_is_not_promoted(
    useless: Stack,
) -> None:
    served: dict[str, int] = {}
    await until_registered(useless, served)
    await traffic(useless, 1500, seed=7, served=served)
    await useless.settle()
    assert served[CHALLENGER] >= 100, served
    assert [p.variant for p in await useless.events(VariantPromoted)] == []
