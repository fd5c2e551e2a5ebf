"""More of the OpenAI surface: embeddings, legacy completions and the Responses API are
passed through to the provider the model names and recorded; /v1/models lists routed
prompts and the providers' models; CORS only for the configured origins."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from conftest import MakeSidecar
from fake_upstream import fake_embedding

from promptlab.events.models import ExecutionCompleted


async def test_embeddings_are_passed_through_and_recorded(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    raw = await sidecar.client().embeddings.with_raw_response.create(
        model="fake/embed-1",
        input=["an awful movie", "a dreadful picture"],
        extra_body={"api_base": "http://evil"},
    )
    result = raw.parse()
    assert [d.embedding for d in result.data] == [
        fake_embedding("an awful movie"),
        fake_embedding("a dreadful picture"),
    ]
    forwarded = sidecar.upstream.requests[-1]
    assert forwarded.path == "/v1/embeddings" and forwarded.body["model"] == "embed-1"
    assert "api_base" not in forwarded.body
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted)
    assert (event.endpoint, event.model, event.input_tokens) == ("embeddings", "fake/embed-1", 8)
    assert event.execution_id == raw.headers["X-Promptlab-Execution"]


async def test_legacy_completions_and_responses_are_passed_through(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar()
    client = sidecar.client()
    completion = await client.completions.create(model="fake/m", prompt="hi")
    assert completion.choices[0].text == "echo: hi"
    response = await client.responses.create(model="fake/m", input="hello")
    assert response.output_text == "echo: hello"
    events = await sidecar.wait_events("execution.completed", 2)
    by_endpoint = {e.endpoint: e for e in events if isinstance(e, ExecutionCompleted)}
    assert by_endpoint["completions"].output_tokens == 2
    assert (by_endpoint["responses"].input_tokens, by_endpoint["responses"].output_tokens) == (6, 3)


async def test_a_passthrough_failure_is_recorded(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    with pytest.raises(openai.BadRequestError):
        await sidecar.client().embeddings.create(model="promptlab/summarize", input="x")
    sidecar.upstream.fail_next(503, times=3)
    with pytest.raises(openai.InternalServerError):
        await sidecar.client().embeddings.create(model="fake/m", input="x")
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted)
    assert (event.status, event.error_kind, event.endpoint) == (
        "error",
        "upstream_5xx",
        "embeddings",
    )


async def test_models_lists_prompts_and_provider_models(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(providers={"fake": {"models": ["model-a", "model-b"]}})
    client = sidecar.client()
    ids = [m.id async for m in client.models.list()]
    assert "promptlab/summarize" in ids and "fake/model-a" in ids and "fake/model-b" in ids
    one = await client.models.retrieve("fake/model-a")
    assert one.owned_by == "fake"
    prompt = await client.models.retrieve("promptlab/summarize")
    assert prompt.owned_by == "promptlab"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("fake/unknown")


async def test_cors_answers_only_the_configured_origins(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(
        bus="memory",
        server={"cors_origins": ["http://app.example"], "api_keys": ["client-key-1"]},
    )
    preflight = {
        "Origin": "http://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with aiohttp.ClientSession() as session:
        async with session.options(sidecar.url + "/v1/chat/completions", headers=preflight) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "http://app.example"
            assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            assert "authorization" in resp.headers["Access-Control-Allow-Headers"].lower()
        other = {**preflight, "Origin": "http://evil.example"}
        async with session.options(sidecar.url + "/v1/chat/completions", headers=other) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers
        headers = {"Origin": "http://app.example", "Authorization": "Bearer client-key-1"}
        async with session.get(sidecar.url + "/v1/models", headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == "http://app.example"
            assert "X-Promptlab-Execution" in resp.headers["Access-Control-Expose-Headers"]


async def test_no_cors_by_default(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(bus="memory")
    async with (
        aiohttp.ClientSession() as session,
        session.get(sidecar.url + "/v1/models", headers={"Origin": "http://app.example"}) as resp,
    ):
        assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers
