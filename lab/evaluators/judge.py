"""The LLM judge: a rubric, the case, the answer -> a score in 0..1 and a short reason.

The judge is called through the lab's :class:`~lab.client.ModelClient`, so its calls
count against the budget and its cost is reported. An answer that is not the JSON
object asked for is an *evaluation error* (reported, never scored as zero).
"""

from __future__ import annotations

import json
import re
from typing import Any

from promptlab.lab.client import ModelClient, error_kind, output_text
from promptlab.lab.evaluators.base import EvalContext, EvalResult
from promptlab.lab.evaluators.specs import JudgeSpec

JUDGE_SYSTEM = (
    "You are a strict grader. Grade the answer against the rubric. "
    'Reply with one JSON object and nothing else: {"score": <number from 0 to 1>, '
    '"reason": "<one short sentence>"}.'
)
"""The judge's system message (fake upstreams in tests recognise it)."""

_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
MAX_REASON = 300


def judge_messages(spec: JudgeSpec, ctx: EvalContext) -> list[dict[str, str]]:
    parts = [f"Rubric:\n{spec.rubric}"]
    if ctx.inputs:
        parts.append("Task input:\n" + json.dumps(dict(ctx.inputs), ensure_ascii=False))
    if spec.reference and ctx.expected is not None:
        parts.append(f"Reference answer:\n{ctx.expected}")
    parts.append(f"Answer to grade:\n{ctx.output}")
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def parse_verdict(text: str) -> tuple[float, str] | str:
    """``(score, reason)`` from the judge's text, or a message saying why not."""
    match = _OBJECT.search(text)
    if match is None:
        return f"judge answer is not a JSON object: {text[:80]!r}"
    try:
        data = json.loads(match.group())
    except ValueError:
        return f"judge answer is not valid JSON: {text[:80]!r}"
    score = data.get("score") if isinstance(data, dict) else None
    if isinstance(score, bool) or not isinstance(score, int | float):
        return f"judge answer has no numeric score: {text[:80]!r}"
    if not 0.0 <= float(score) <= 1.0:
        return f"judge score {score!r} is outside 0..1"
    reason = data.get("reason", "")
    return float(score), str(reason)[:MAX_REASON]


class Judge:
    calls = 1

    def __init__(self, spec: JudgeSpec, name: str, client: ModelClient) -> None:
        self.spec = spec
        self.name = name
        self.weight = spec.weight
        self.client = client

    async def evaluate(self, ctx: EvalContext) -> EvalResult:
        body: dict[str, Any] = {**self.spec.params, "messages": judge_messages(self.spec, ctx)}
        try:
            completion = await self.client.complete(self.spec.model, body)
        except Exception as exc:  # the call is recorded as an evaluation error, not a zero
            return EvalResult.failed(f"judge call failed: {error_kind(exc)}", calls=1)
        cost = float(completion.cost_usd or 0.0)
        verdict = parse_verdict(output_text(completion.data))
        if isinstance(verdict, str):
            return EvalResult.failed(verdict, cost_usd=cost, calls=1)
        score, reason = verdict
        return EvalResult(score, reason, None, cost, 1)
