"""A prompt with ``[evaluation]`` has its content captured (truncated), others do not."""

from __future__ import annotations

from conftest import SECRET, MakeSidecar, summarize_prompt

from promptlab.events.models import ExecutionCompleted
from promptlab.prompts import PromptSpec


def evaluated() -> PromptSpec:
    data = summarize_prompt(strategy="fixed", weights={"v1": 1.0, "v2": 0.0}).model_dump()
    data.update(
        id="evaluated",
        evaluation={"evaluators": [{"kind": "length", "max": 100}], "sample": 1.0},
    )
    return PromptSpec.model_validate(data)


async def test_only_the_evaluated_prompt_is_captured(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(
        prompts=[evaluated(), summarize_prompt()], server={"capture_max_chars": 40}, bus="memory"
    )
    client = sidecar.client()
    long_code = "x" * 100
    for model in ("promptlab/evaluated", "promptlab/summarize"):
        await client.chat.completions.create(
            model=model, messages=[], extra_body={"promptlab": {"variables": {"code": long_code}}}
        )
    events = await sidecar.wait_events("execution.completed", 2)
    by_prompt = {e.prompt_id: e for e in events if isinstance(e, ExecutionCompleted)}
    captured = by_prompt["evaluated"].content
    assert captured is not None and captured.output and captured.truncated
    assert all(len(m["content"]) <= 40 for m in captured.messages)
    assert by_prompt["summarize"].content is None
    assert SECRET not in captured.model_dump_json()
