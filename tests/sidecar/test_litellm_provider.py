"""A routed call to a non-OpenAI provider (``kind = "anthropic"``, through litellm, to an
Anthropic-Messages-shaped fake): plain and streamed, tokens and cost recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from anthropic_fake import MODEL, USAGE, AnthropicFake
from conftest import MakeSidecar

from promptlab.events.models import ExecutionCompleted
from promptlab.prompts import PromptSpec

VARS = {"promptlab": {"variables": {"name": "Ada"}}}


@pytest.fixture
async def anthropic() -> AsyncIterator[AnthropicFake]:
    fake = AnthropicFake()
    await fake.start()
    yield fake
    await fake.stop()


def claude_prompt() -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": "greet",
            "variables": [{"name": "name", "type": "string", "required": True}],
            "variants": [
                {
                    "name": "claude",
                    "model": f"claude/{MODEL}",
                    "template": "Say hello to {{ name }}",
                    "params": {"max_tokens": 64},
                }
            ],
        }
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_an_anthropic_variant_answers_with_tokens_and_cost(
    make_sidecar: MakeSidecar, anthropic: AnthropicFake, stream: bool
) -> None:
    sidecar = await make_sidecar(
        prompts=[claude_prompt()],
        providers={"claude": {"kind": "anthropic", "api_base": anthropic.base_url}},
    )
    client = sidecar.client()
    if stream:
        chunks = await client.chat.completions.create(
            model="promptlab/greet", messages=[], extra_body=VARS, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    else:
        answer = await client.chat.completions.create(
            model="promptlab/greet", messages=[], extra_body=VARS
        )
        text = answer.choices[0].message.content or ""
    assert text.strip() == "claude says: Say hello to Ada"
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted) and event.status == "ok"
    assert (event.input_tokens, event.output_tokens) == (
        USAGE["input_tokens"],
        USAGE["output_tokens"],
    )
    assert event.cost_usd > 0 and event.provider == "claude" and event.stream is stream
