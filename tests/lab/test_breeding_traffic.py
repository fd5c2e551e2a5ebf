"""Reflection on real failures: continuous breeding reads a prompt's production examples.

A prompt with no ``[[examples]]`` but captured traffic (SQLite store projected from
events): ``reflect`` shows the mutator the low-rated calls with their comments and the
corrections, and the offline check runs on a held-out set of good calls from traffic,
none of which the mutator saw. The fake upstream (HTTP, SIMULATED) is mutator, model and
judge; ``bench.evolution_task`` scores its answers.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from evolution_upstream import EvolutionUpstream

from bench.evolution_task import CASES
from promptlab.events.bus import Delivery
from promptlab.events.kinds import DEMONSTRATION
from promptlab.events.memory import MemoryBus
from promptlab.events.models import (
    BaseEvent,
    CapturedContent,
    ExecutionCompleted,
    FeedbackReceived,
    VariantRegistered,
    encode,
)
from promptlab.learner.breeding import Breeder
from promptlab.learner.config import EvolutionSettings
from promptlab.learner.examples import read_examples
from promptlab.learner.live_cases import held_out_cases, live_failures
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.storage.store import Store
from promptlab.learner.storage.view import PromptView, load_view
from promptlab.prompts import PromotionConfig, PromptSpec
from promptlab.providers import Providers, ProviderSettings

PROMPT = "summarize"
GOOD = ["factorial", "parser", "sorting", "cache"]
"""Inputs rated good (the held-out set); the two others fail."""


def spec() -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": PROMPT,
            "variables": [{"name": "code", "type": "string", "required": True}],
            "learning": {"capture": True},
            "variants": [
                {"name": "v1", "model": "fake/model", "template": "Summarize this code: {{ code }}"}
            ],
        }
    )


def stream() -> list[BaseEvent]:
    variant = spec().champion
    events: list[BaseEvent] = [
        VariantRegistered(
            prompt_id=PROMPT,
            variant="v1",
            version=variant.version,
            model=variant.model,
            template=variant.template,
            champion=True,
        )
    ]

    def call(i: int, code: str) -> ExecutionCompleted:
        return ExecutionCompleted(
            execution_id=f"x{i}",
            prompt_id=PROMPT,
            variant="v1",
            version=variant.version,
            model="fake/model",
            provider="fake",
            latency_ms=5.0,
            content=CapturedContent(output=f"answer {i}", variables={"code": code}),
        )

    def rate(i: int, good: bool, comment: str | None = None) -> FeedbackReceived:
        return FeedbackReceived(execution_id=f"x{i}", name="thumbs_up", value=good, comment=comment)

    for i, code in enumerate(GOOD * 2):  # each good input twice: deduplicated in the check
        events += [call(i, code), rate(i, True)]
    events += [call(20, "retry"), rate(20, False, "missing: edge cases")]
    events += [
        call(21, "tokenizer"),
        FeedbackReceived(
            execution_id="x21",
            name=DEMONSTRATION,
            value=True,
            text="Splits text into JSON tokens.",
            comment="missing: json",
        ),
    ]
    return events


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}")
    await store.create()
    projection = Projection(store, consumer="learner", rewards={PROMPT: RewardRule("thumbs_up")})
    await projection.load()
    events = stream()
    await projection.apply(
        [Delivery(sequence=i + 1, event=e, data=encode(e)) for i, e in enumerate(events)]
    )
    yield store
    await store.close()


async def test_live_failures_and_the_held_out_set_are_disjoint(store: Store) -> None:
    read = functools.partial(read_examples, store)
    failures = await live_failures(read, PROMPT, limit=10, failure_reward=0.5)
    assert [(f.case_id, f.inputs, f.output, f.expected, f.reasons) for f in failures] == [
        (
            "live x21 (corrected by a reviewer)",
            {"code": "tokenizer"},
            "answer 21",
            "Splits text into JSON tokens.",
            ["missing: json"],
        ),
        ("live x20", {"code": "retry"}, "answer 20", None, ["missing: edge cases"]),
    ]
    cases = await held_out_cases(read, PROMPT, min_cases=4, max_cases=10, good_reward=0.8)
    assert sorted(c.inputs["code"] for c in cases) == sorted(GOOD)
    assert all(c.expected and c.expected.startswith("answer") for c in cases)
    assert await held_out_cases(read, PROMPT, min_cases=5, max_cases=10, good_reward=0.8) == []
    assert await live_failures(read, PROMPT, limit=0, failure_reward=0.5) == []


async def test_reflect_reads_real_failures_and_the_check_runs_on_traffic(store: Store) -> None:
    assert set(GOOD) < set(CASES)
    upstream = EvolutionUpstream()
    await upstream.start()
    fake = ProviderSettings(kind="openai", api_base=upstream.base_url, max_retries=0)
    bus = MemoryBus()
    await bus.start()

    async def view(prompt_id: str) -> PromptView | None:
        return await load_view(store, prompt_id, PromotionConfig())

    settings = EvolutionSettings(
        enabled=True,
        mutator="fake/mutator",
        judge="fake/judge",
        population=1,
        min_champion_samples=0,
        repeats=1,
        strategies=["reflect"],
        gate_min_cases=4,
    )
    try:
        async with Providers({"fake": fake}) as client:
            breeder = Breeder(
                settings,
                bus=bus,
                client=client,
                prompts={PROMPT: spec()},
                views=view,
                examples=functools.partial(read_examples, store),
            )
            outcome = await breeder.breed_once(PROMPT)
            # Without production examples (and no [[examples]]) there is nothing to
            # check a mutant on: breeding waits, as it always did.
            empty = Breeder(settings, bus=bus, client=client, prompts={PROMPT: spec()}, views=view)
            assert await empty.breed_once(PROMPT) is None
    finally:
        await bus.close()
        await upstream.stop()
    assert outcome is not None and outcome.operator == "reflect"
    [request] = upstream.mutation_requests
    shown = request["messages"][-1]["content"]
    assert "live x20" in shown and "missing: edge cases" in shown
    assert "Splits text into JSON tokens." in shown and "missing: json" in shown
    for code in GOOD:  # the held-out inputs never reach the mutator
        assert json.dumps({"code": code}) not in shown
    assert outcome.check is not None and outcome.check["n"] == len(GOOD)
