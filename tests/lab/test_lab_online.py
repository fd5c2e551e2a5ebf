"""Online evaluation: sampled live executions scored and fed to the learner as feedback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lab_fixtures import providers, upstream  # noqa: F401 (pytest fixtures)
from lab_upstream import LabUpstream
from polling import until

from promptlab.events.jetstream import JetStreamBus
from promptlab.events.models import (
    CapturedContent,
    EvaluationFailed,
    ExecutionCompleted,
    FeedbackReceived,
)
from promptlab.events.snapshots import StatsSnapshot
from promptlab.events.subjects import Bucket
from promptlab.lab.online import OnlineEvaluator, check_evaluation, sampled
from promptlab.learner.config import LearnerSettings, StorageSettings
from promptlab.learner.service import Learner
from promptlab.prompts import EvaluationSpec, PromptSpec
from promptlab.providers import Providers


def spec(**evaluation: object) -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "support",
            "variables": [{"name": "q"}],
            "reward": {"feedback": "auto_quality"},
            "evaluation": {
                "feedback": "auto_quality",
                "sample": 1.0,
                "evaluators": [
                    {"kind": "judge", "model": "fake/judge", "rubric": "Helpful?", "weight": 3},
                    {"kind": "contains", "value": "quality", "weight": 1},
                ],
                **evaluation,
            },
            "variants": [
                {"name": "a", "model": "fake/cheap", "template": "{{ q }}", "champion": True},
                {"name": "b", "model": "fake/cheap", "template": "Answer kindly: {{ q }}"},
            ],
        }
    )


def live(execution_id: str, variant: str, output: str, **kw: object) -> ExecutionCompleted:
    return ExecutionCompleted(
        execution_id=execution_id,
        prompt_id="support",
        variant=variant,
        model="fake/cheap",
        provider="fake",
        latency_ms=50.0,
        content=CapturedContent(messages=[{"role": "user", "content": "help"}], output=output),
        **kw,  # type: ignore[arg-type]
    )


def test_sampling_is_deterministic_and_close_to_the_share() -> None:
    ids = [f"exec-{i}" for i in range(20_000)]
    picked = [i for i in ids if sampled(i, 0.1)]
    assert 0.09 < len(picked) / len(ids) < 0.11
    assert picked == [i for i in ids if sampled(i, 0.1)]
    assert all(sampled(i, 1.0) for i in ids[:10]) and not any(sampled(i, 0.0) for i in ids[:10])


def test_bad_evaluator_entries_are_named() -> None:
    problems = check_evaluation(EvaluationSpec(evaluators=[{"kind": "judge", "rubric": "x"}]))
    assert problems and "model" in problems[0]


async def test_scores_reach_the_learner_as_the_reward(
    jetstream_bus: JetStreamBus, upstream: LabUpstream, providers: Providers, tmp_path: Path
) -> None:
    prompts = {"support": spec()}
    evaluator = OnlineEvaluator(jetstream_bus, prompts, providers)
    learner = Learner(
        LearnerSettings(batch_size=50, snapshot_interval_ms=10),
        StorageSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}"),
        jetstream_bus,
        prompts,
        policy=None,
    )
    async with learner:  # runs its loop until the block ends
        evaluator.start()
        try:
            await _subscribed(jetstream_bus, evaluator)
            scores = [0.2, 0.6, 1.0, 0.4]
            for i, q in enumerate(scores):
                await jetstream_bus.publish(live(f"b{i}", "b", f"quality={q}"))
            await jetstream_bus.publish(live("garbled", "b", "quality=0.5 GARBLE"))
            await jetstream_bus.publish(live("failed", "b", "", status="error"))
            await jetstream_bus.publish(live("offline", "b", "quality=1", source="offline"))
            await until(
                lambda: (
                    evaluator.counters.published == len(scores) and evaluator.counters.errors == 1
                )
            )

            async def stats() -> StatsSnapshot | None:
                entry = await jetstream_bus.kv_get(Bucket.STATS.value, "support")
                return (
                    None
                    if entry is None or entry.value is None
                    else StatsSnapshot.decode(entry.value)
                )

            expected = sum(0.75 * q + 0.25 for q in scores) / len(scores)
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                snap = await stats()
                b = next((v for v in snap.variants if v.variant == "b"), None) if snap else None
                if b is not None and b.rewarded == len(scores):
                    break
                assert asyncio.get_running_loop().time() < deadline, snap
                await asyncio.sleep(0.02)
            assert b.reward_mean == pytest.approx(expected)
            # The garbled verdict is an error, counted durably by the learner (not a zero).
            await until(lambda: learner.projection.counters.get("evaluation_errors") == 1)
        finally:
            await evaluator.stop()

    feedback = [e async for _, e, _ in jetstream_bus.read() if isinstance(e, FeedbackReceived)]
    assert {f.execution_id for f in feedback} == {f"b{i}" for i in range(len(scores))}
    assert {(f.source, f.name) for f in feedback} == {("evaluator", "auto_quality")}
    assert all(f.comment and "fake judge read quality" in f.comment for f in feedback)
    assert upstream.calls["fake/judge"] == len(scores) + 1  # the garbled one was judged too
    failed = [e async for _, e, _ in jetstream_bus.read() if isinstance(e, EvaluationFailed)]
    assert [(f.execution_id, f.source) for f in failed] == [("garbled", "live")]
    assert "JSON" in failed[0].errors[0]


async def test_the_daily_budget_pauses_evaluation_until_the_next_day(
    memory_bus: object, upstream: LabUpstream, providers: Providers
) -> None:
    from promptlab.events.memory import MemoryBus

    assert isinstance(memory_bus, MemoryBus)
    now = [86400.0 * 100 + 10]
    evaluator = OnlineEvaluator(
        memory_bus, {"support": spec(max_calls_per_day=2)}, providers, clock=lambda: now[0]
    )
    results = [await evaluator.handle(live(f"x{i}", "a", "quality=0.5")) for i in range(3)]
    assert [r is not None for r in results] == [True, True, False]
    assert evaluator.counters.over_budget == 1
    now[0] += 86400
    assert await evaluator.handle(live("next-day", "a", "quality=0.5")) is not None


async def test_no_content_no_evaluation(memory_bus: object, providers: Providers) -> None:
    evaluator = OnlineEvaluator(memory_bus, {"support": spec()}, providers)  # type: ignore[arg-type]
    event = live("x", "a", "quality=1").model_copy(update={"content": None})
    assert await evaluator.handle(event) is None
    assert evaluator.counters.no_content == 1


async def _subscribed(bus: JetStreamBus, evaluator: OnlineEvaluator) -> None:
    """Publish probes until the evaluator's live subscription sees one."""
    deadline = asyncio.get_running_loop().time() + 10
    n = 0
    while evaluator.counters.seen == 0:
        assert asyncio.get_running_loop().time() < deadline
        await bus.publish(live(f"probe{n}", "a", "", status="error"))
        n += 1
        await asyncio.sleep(0.02)
