"""Routed prompts on the legacy ``/v1/completions`` (LlamaIndex's ``OpenAILike`` default),
through the official openai SDK's ``completions.create``, which calls the same endpoint."""

from __future__ import annotations

import openai
import pytest
from conftest import MakeSidecar, summarize_prompt

from promptlab.events.models import ExecutionCompleted

ONLY_V2 = {"strategy": "fixed", "weights": {"v1": 0.0, "v2": 1.0}}
VARIABLES = {"promptlab": {"variables": {"code": "print(1)"}, "subject": "alice"}}


async def test_a_routed_prompt_is_served_on_completions_and_recorded(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(prompts=[summarize_prompt(**ONLY_V2)])
    raw = await sidecar.client().completions.with_raw_response.create(
        model="promptlab/summarize", prompt="and shorter please", extra_body=VARIABLES
    )
    completion = raw.parse()

    forwarded = sidecar.upstream.requests[-1]
    assert forwarded.path == "/v1/chat/completions"  # the variant's chat model answers
    assert forwarded.body["model"] == "model-b" and "prompt" not in forwarded.body
    assert forwarded.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "TL;DR (python): print(1)"},
        {"role": "user", "content": "and shorter please"},
    ]
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "echo: and shorter please"
    assert completion.usage is not None and completion.usage.completion_tokens == 4
    execution_id = raw.headers["X-Promptlab-Execution"]
    assert completion.id == execution_id and raw.headers["X-Promptlab-Variant"] == "v2"

    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted)
    assert (event.execution_id, event.prompt_id, event.variant, event.endpoint) == (
        execution_id,
        "summarize",
        "v2",
        "completions",
    )
    assert event.status == "ok" and event.subject == "alice"


async def test_the_header_routes_a_completions_call_and_an_empty_prompt_is_the_template(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(prompts=[summarize_prompt(**ONLY_V2)])
    completion = await sidecar.client().completions.create(
        model="anything",
        prompt="",
        extra_headers={"X-Promptlab-Prompt": "summarize"},
        extra_body=VARIABLES,
    )
    assert sidecar.upstream.requests[-1].body["messages"][-1] == {
        "role": "user",
        "content": "TL;DR (python): print(1)",
    }
    assert completion.choices[0].text == "echo: TL;DR (python): print(1)"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"stream": True}, "stream"),
        ({"echo": True}, "echo"),
        ({"suffix": "end"}, "suffix"),
        ({"prompt": ["one", "two"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
    ],
)
async def test_what_a_routed_completions_call_cannot_honour_is_a_clear_400(
    make_sidecar: MakeSidecar, extra: dict[str, object], param: str
) -> None:
    sidecar = await make_sidecar(prompts=[summarize_prompt(**ONLY_V2)])
    session = sidecar.client()
    body = {"model": "promptlab/summarize", "prompt": "hi", **VARIABLES, **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        await session.post("/completions", body=body, cast_to=object)
    error = caught.value.body
    assert (
        isinstance(error, dict)
        and error["param"] == param
        and error["type"] == "invalid_request_error"
    )
    assert "/v1/chat/completions" in error["message"] or "one 'prompt' string" in error["message"]
    assert not [r for r in sidecar.upstream.requests if r.path.endswith("completions")]


async def test_embeddings_say_where_routed_prompts_are_served(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    with pytest.raises(openai.BadRequestError) as caught:
        await sidecar.client().embeddings.create(model="promptlab/summarize", input="x")
    assert "routed prompts are served on /v1/chat/completions and /v1/completions" in str(
        caught.value
    )
