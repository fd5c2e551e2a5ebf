"""Streamed completions: SSE byte shape, usage handling, cancellation."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from conftest import MakeSidecar

from promptlab.events.models import ExecutionCompleted

BODY = {
    "model": "promptlab/summarize",
    "messages": [],
    "stream": True,
    "promptlab": {"variables": {"code": "a b c"}},
}


async def raw_stream(url: str, body: dict[str, object]) -> tuple[aiohttp.ClientResponse, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + "/v1/chat/completions", json=body) as resp,
    ):
        return resp, await resp.read()


async def test_stream_is_openai_shaped_and_hides_usage_not_asked_for(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar()
    resp, data = await raw_stream(sidecar.url, BODY)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    execution_id = resp.headers["X-Promptlab-Execution"]
    assert data.endswith(b"data: [DONE]\n\n")
    events = data.split(b"\n\n")[:-1]
    assert all(e.startswith(b"data: ") for e in events)
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert all(c["id"] == execution_id for c in chunks)
    assert all(c["choices"] for c in chunks), "the usage-only chunk must be hidden"
    assert sidecar.upstream.requests[-1].body["stream_options"] == {"include_usage": True}
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted)
    assert (
        event.stream
        and event.status == "ok"
        and event.output_tokens > 0
        and event.ttft_ms is not None
    )


async def test_sdk_stream_with_usage_when_asked(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    stream = await sidecar.client().chat.completions.create(
        model="promptlab/summarize",
        messages=[],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"promptlab": {"variables": {"code": "hello world"}}},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("echo: ")
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 10


async def test_simulated_stream(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    stream = await sidecar.client().chat.completions.create(
        model="promptlab/greet",
        messages=[],
        stream=True,
        extra_body={"promptlab": {"variables": {"name": "Bo"}}},
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith(
        "[simulated alpha]"
    )
    assert all(c.system_fingerprint == "promptlab-simulated" for c in chunks)


async def test_client_disconnect_mid_stream_is_recorded_as_cancelled(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar()
    sidecar.upstream.chunk_delay_s = 0.05
    body = {**BODY, "promptlab": {"variables": {"code": " ".join(["word"] * 30)}}}
    async with aiohttp.ClientSession() as session:
        resp = await session.post(sidecar.url + "/v1/chat/completions", json=body)
        await resp.content.readline()
        resp.close()  # the app goes away mid-stream
    [event] = await sidecar.wait_events("execution.completed", 1)
    assert isinstance(event, ExecutionCompleted)
    assert event.status == "cancelled" and event.error_kind == "client_disconnected"
    for _ in range(100):
        if sidecar.upstream.cancelled_streams:
            break
        await asyncio.sleep(0.02)
    assert sidecar.upstream.cancelled_streams == 1, "the upstream call must be cancelled too"
