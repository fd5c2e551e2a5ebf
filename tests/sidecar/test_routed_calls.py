"""Routed and unrouted chat completions through the official OpenAI SDK."""

from __future__ import annotations

import asyncio

from conftest import SECRET, MakeSidecar, summarize_prompt

from promptlab.events.models import ExecutionCompleted
from promptlab.events.snapshots import ArmPosterior, RoutingSnapshot


def only_v2() -> dict[str, object]:
    return {"strategy": "fixed", "weights": {"v1": 0.0, "v2": 1.0}}


async def test_routed_call_renders_the_variant_and_records_an_execution(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(prompts=[summarize_prompt(**only_v2())])
    client = sidecar.client()

    raw = await client.chat.completions.with_raw_response.create(
        model="promptlab/summarize",
        messages=[
            {"role": "system", "content": "ignored: the template owns instructions"},
            {"role": "user", "content": "and shorter please"},
        ],
        temperature=0.9,
        seed=42,
        user="u-1",
        tools=[
            {
                "type": "function",
                "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}},
            }
        ],
        extra_body={
            "promptlab": {"variables": {"code": "print(1)"}, "subject": "alice"},
            "api_base": "http://evil.example",
            "base_url": "http://evil.example",
        },
    )
    completion = raw.parse()

    forwarded = sidecar.upstream.requests[-1].body
    assert forwarded["model"] == "model-b"
    assert forwarded["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "TL;DR (python): print(1)"},
        {"role": "user", "content": "and shorter please"},
    ]
    assert forwarded["temperature"] == 0.1  # the variant's params win
    assert forwarded["max_tokens"] == 50
    assert (
        forwarded["seed"] == 42
        and forwarded["user"] == "u-1"
        and forwarded["tools"][0]["function"]["name"] == "noop"
    )
    assert (
        "promptlab" not in forwarded and "api_base" not in forwarded and "base_url" not in forwarded
    )
    assert sidecar.upstream.requests[-1].headers["Authorization"] == f"Bearer {SECRET}"

    execution_id = raw.headers["X-Promptlab-Execution"]
    assert completion.id == execution_id
    assert raw.headers["X-Promptlab-Variant"] == "v2"
    assert completion.choices[0].message.content == "echo: and shorter please"

    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted)
    assert (event.execution_id, event.prompt_id, event.variant, event.model, event.provider) == (
        execution_id,
        "summarize",
        "v2",
        "fake/model-b",
        "fake",
    )
    assert event.status == "ok" and event.subject == "alice" and event.http_status == 200
    assert event.input_tokens == 10 and event.output_tokens == 4
    assert (
        event.routing is not None
        and event.routing.strategy == "sticky"
        and event.routing.exploration
    )
    assert event.version == summarize_prompt().variant("v2").version


async def test_header_routes_a_call_whatever_the_model(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(prompts=[summarize_prompt(**only_v2())])
    completion = await sidecar.client().chat.completions.create(
        model="gpt-anything",
        messages=[],
        extra_headers={"X-Promptlab-Prompt": "summarize"},
        extra_body={"promptlab": {"variables": {"code": "x = 1"}}},
    )
    assert sidecar.upstream.requests[-1].body["model"] == "model-b"
    assert sidecar.upstream.requests[-1].body["messages"][-1] == {
        "role": "user",
        "content": "TL;DR (python): x = 1",
    }
    assert completion.choices[0].message.content == "echo: TL;DR (python): x = 1"


async def test_unrouted_call_passes_through_unchanged_and_is_recorded(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar()
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]
    raw = await sidecar.client().chat.completions.with_raw_response.create(
        model="fake/raw-model",
        messages=messages,
        temperature=0.3,
        extra_body={"base_url": "http://evil.example"},
    )
    forwarded = sidecar.upstream.requests[-1].body
    assert forwarded == {"model": "raw-model", "messages": messages, "temperature": 0.3}
    assert "X-Promptlab-Variant" not in raw.headers
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted)
    assert (
        event.prompt_id is None
        and event.variant is None
        and event.model == "fake/raw-model"
        and event.status == "ok"
    )
    assert event.execution_id == raw.parse().id == raw.headers["X-Promptlab-Execution"]


async def test_sync_client_works_too(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    client = sidecar.sync_client()
    completion = await asyncio.to_thread(
        client.chat.completions.create,
        model="promptlab/summarize",
        messages=[],
        extra_body={"promptlab": {"variables": {"code": "y = 2"}}},
    )
    assert completion.choices[0].message.content.startswith("echo: ")


async def test_simulated_provider_answers_without_network(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    client = sidecar.client()
    first = await client.chat.completions.create(
        model="promptlab/greet",
        messages=[],
        extra_body={"promptlab": {"variables": {"name": "Ada"}}},
    )
    second = await client.chat.completions.create(
        model="promptlab/greet",
        messages=[],
        extra_body={"promptlab": {"variables": {"name": "Ada"}}},
    )
    assert first.system_fingerprint == "promptlab-simulated"
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content.startswith("[simulated alpha] Say hello to Ada")
    assert sidecar.upstream.requests == []


async def test_routing_snapshot_from_kv_changes_the_routing(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(prompts=[summarize_prompt(sticky=False)])
    snapshot = RoutingSnapshot(
        prompt_id="summarize",
        version=5,
        champion="v2",
        exploration_cap=0.0,
        arms=[
            ArmPosterior(variant="v1", alpha=1, beta=1),
            ArmPosterior(variant="v2", alpha=1, beta=1, status="champion"),
        ],
    )
    await sidecar.bus.kv_put("promptlab_routing", "summarize", snapshot.encode())
    router = sidecar.app[__import__("promptlab.sidecar.keys").sidecar.keys.ROUTER]
    for _ in range(200):
        if router.snapshot("summarize") is not None:
            break
        await asyncio.sleep(0.01)
    raw = await sidecar.client().chat.completions.with_raw_response.create(
        model="promptlab/summarize",
        messages=[],
        extra_body={"promptlab": {"variables": {"code": "z"}}},
    )
    assert raw.headers["X-Promptlab-Variant"] == "v2"
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted)
    assert (
        event.routing is not None
        and event.routing.snapshot_version == 5
        and not event.routing.exploration
    )


async def test_models_lists_routed_prompts(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    page = await sidecar.client().models.list()
    assert sorted(m.id for m in page.data) == ["promptlab/greet", "promptlab/summarize"]
