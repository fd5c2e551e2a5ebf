"""Online evaluation: a prompt's ``[evaluation]`` evaluators on sampled live executions.

The learner process runs an :class:`OnlineEvaluator`. It watches live
``ExecutionCompleted`` events of prompts that have an ``[evaluation]`` section, picks a
``sample`` share of them by execution id (deterministic: every replica picks the same),
runs the evaluators (the same registry as offline runs) on the captured content and
publishes the weighted score as ``FeedbackReceived`` with ``source = "evaluator"``, so a
prompt whose users give no feedback still learns (name it in ``[reward] feedback``).

Each prompt has a daily budget (UTC day): ``max_calls_per_day`` judge calls and
``max_usd_per_day``; once spent, evaluation of that prompt pauses until the next day.
An evaluation error publishes no score (never a zero): it is logged at WARNING and
published as ``EvaluationFailed``, which the learner counts durably
(``evaluation_errors`` in ``promptlab stats --json`` and ``/metrics``). The graded answer
is written by end users' calls, so the judge reads it as delimited data
(:mod:`lab.evaluators.judge`). Only the sidecar's captured, truncated content is read; no
secret reaches it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from promptlab.events.bus import EventBus
from promptlab.events.models import EvaluationFailed, ExecutionCompleted, FeedbackReceived
from promptlab.events.subjects import Subject
from promptlab.lab.client import ModelClient
from promptlab.lab.evaluators import EvalContext, EvaluatorSpec, Panel, build
from promptlab.prompts import EvaluationSpec, PromptSpec

log = logging.getLogger(__name__)

_SPECS: TypeAdapter[list[EvaluatorSpec]] = TypeAdapter(list[EvaluatorSpec])
MAX_COMMENT = 500


def sampled(execution_id: str, share: float) -> bool:
    """True for a ``share`` of execution ids, the same answer everywhere."""
    if share >= 1.0:
        return True
    digest = hashlib.sha256(execution_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def check_evaluation(spec: EvaluationSpec) -> list[str]:
    """Problems with an ``[evaluation]`` section's evaluators ("" when fine)."""
    try:
        _SPECS.validate_python(spec.evaluators)
    except ValidationError as exc:
        return [
            f"evaluation.evaluators{''.join(f'[{p}]' if isinstance(p, int) else f'.{p}' for p in e['loc'])}: {e['msg']}"
            for e in exc.errors()
        ]
    return []


@dataclass
class _Day:
    day: int = -1
    calls: int = 0
    usd: float = 0.0


@dataclass
class _Prompt:
    spec: EvaluationSpec
    panel: Panel
    today: _Day = field(default_factory=_Day)


@dataclass
class Counters:
    seen: int = 0
    sampled: int = 0
    published: int = 0
    errors: int = 0
    over_budget: int = 0
    no_content: int = 0


class OnlineEvaluator:
    """Scores sampled live executions and publishes the scores as feedback."""

    def __init__(
        self,
        bus: EventBus,
        prompts: Mapping[str, PromptSpec],
        client: ModelClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bus = bus
        self.client = client
        self.clock = clock
        self.counters = Counters()
        self._prompts: dict[str, _Prompt] = {}
        self._task: asyncio.Task[None] | None = None
        for prompt in prompts.values():
            if prompt.evaluation is None:
                continue
            problems = check_evaluation(prompt.evaluation)
            if problems:
                log.warning("prompt %s: online evaluation off: %s", prompt.id, "; ".join(problems))
                continue
            specs = _SPECS.validate_python(prompt.evaluation.evaluators)
            self._prompts[prompt.id] = _Prompt(prompt.evaluation, build(specs, client))

    @property
    def active(self) -> bool:
        """Whether any prompt is evaluated online."""
        return bool(self._prompts)

    def _within_budget(self, entry: _Prompt) -> bool:
        day = int(self.clock() // 86400)
        if entry.today.day != day:
            entry.today = _Day(day)
        spec = entry.spec
        if spec.max_calls_per_day is not None and (
            entry.today.calls + entry.panel.calls > spec.max_calls_per_day
        ):
            return False
        return spec.max_usd_per_day is None or entry.today.usd < spec.max_usd_per_day

    async def handle(self, event: ExecutionCompleted) -> FeedbackReceived | None:
        """Evaluate one execution if it is sampled; publish and return the feedback."""
        self.counters.seen += 1
        entry = self._prompts.get(event.prompt_id or "")
        if entry is None or event.source != "live" or event.status != "ok":
            return None
        if not sampled(event.execution_id, entry.spec.sample):
            return None
        self.counters.sampled += 1
        if event.content is None or event.content.output is None:
            self.counters.no_content += 1
            return None
        if not self._within_budget(entry):
            self.counters.over_budget += 1
            return None
        entry.today.calls += entry.panel.calls  # reserved before the judge is called
        verdict = await entry.panel.evaluate(
            EvalContext(event.content.output, None, {"request": _request_text(event)})
        )
        entry.today.calls += verdict.calls - entry.panel.calls
        entry.today.usd += verdict.cost_usd
        if verdict.quality is None:
            self.counters.errors += 1
            log.warning(
                "online evaluation of %s (prompt %s) could not score: %s",
                event.execution_id, event.prompt_id, "; ".join(verdict.errors)[:500],
            )  # fmt: skip
            await self.bus.publish(
                EvaluationFailed.of(event.execution_id, event.prompt_id, list(verdict.errors))
            )
            return None
        reasons = "; ".join(
            f"{name}: {r.reason}" for name, r in verdict.results.items() if r.reason
        )
        feedback = FeedbackReceived(
            execution_id=event.execution_id,
            name=entry.spec.feedback,
            value=verdict.quality,
            comment=reasons[:MAX_COMMENT] or None,
            source="evaluator",
        )
        await self.bus.publish(feedback)
        self.counters.published += 1
        return feedback

    # ------------------------------------------------------------------ service

    async def run(self) -> None:
        """Watch live executions until cancelled (no history: a restart skips the gap)."""
        async for event in self.bus.subscribe((Subject.EXECUTION.value,)):
            if not isinstance(event, ExecutionCompleted):
                continue
            try:
                await self.handle(event)
            except Exception:  # one bad execution must not stop the evaluator
                log.exception("online evaluation of %s failed", event.execution_id)

    def start(self) -> None:
        if self._task is None and self.active:
            self._task = asyncio.create_task(self.run(), name="promptlab-online-evaluator")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


def _request_text(event: ExecutionCompleted) -> Any:
    messages = event.content.messages if event.content is not None else []
    users = [m.get("content") for m in messages if m.get("role") == "user"]
    return users[-1] if users else ""
