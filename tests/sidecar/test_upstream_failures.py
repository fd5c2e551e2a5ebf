"""Every upstream failure is a recorded call: the client gets a clean OpenAI-shaped
error (a broken stream ends with an SSE error event, never ``[DONE]``) and exactly one
ExecutionCompleted with status error and the error kind. The provider key appears in none
of it."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import raw_upstream as up
from conftest import SECRET, Harness, MakeSidecar
from raw_upstream import RawUpstream

from promptlab.events.models import ExecutionCompleted

ERROR_WITH_KEY = json.dumps({"error": {"message": f"boom, key {SECRET}"}}).encode()
BODY = {"model": "raw/m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def raw() -> AsyncIterator[RawUpstream]:
    server = RawUpstream()
    await server.start()
    yield server
    await server.stop()


async def sidecar_on(make_sidecar: MakeSidecar, raw: RawUpstream, **cfg: object) -> Harness:
    provider = {"api_base": raw.base_url, "first_token_timeout_s": 0.5, "timeout_s": 3.0, **cfg}
    return await make_sidecar(providers={"raw": provider})


async def call(sidecar: Harness, body: dict[str, object]) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(sidecar.url + "/v1/chat/completions", json=body) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


async def the_one_event(sidecar: Harness) -> ExecutionCompleted:
    events = await sidecar.wait_events("execution.completed", 1)
    await sidecar.publisher.flush()
    assert len(events) == 1, events
    [event] = events
    assert isinstance(event, ExecutionCompleted)
    raw_events = [data async for _, _, data in sidecar.bus.read(1)]
    assert not any(SECRET.encode() in data for data in raw_events)
    return event


FAILURES = {
    "429-retry-after-past-deadline": (
        [up.response(429, ERROR_WITH_KEY, {"retry-after": "100"})],
        429,
        "rate_limited",
    ),
    "500-three-times": ([up.response(500, ERROR_WITH_KEY)] * 3, 502, "upstream_5xx"),
    "502": ([up.response(502, ERROR_WITH_KEY)] * 3, 502, "upstream_5xx"),
    "503": ([up.response(503, ERROR_WITH_KEY)] * 3, 502, "upstream_5xx"),
    "no-first-token": ([up.hang(5)], 504, "first_token_timeout"),
    "401": ([up.response(401, ERROR_WITH_KEY)], 502, "auth"),
    "malformed-gzip": ([up.gzipped(up.COMPLETION, corrupt=True)], 502, "bad_response"),
    "oversized": ([up.response(body=b" " * (2 << 20))], 502, "too_large"),
    "closed-after-reading": ([up.close_after_read()], 502, "connection_lost"),
}


@pytest.mark.parametrize("name", list(FAILURES))
async def test_a_failed_call_is_answered_and_recorded_once(
    make_sidecar: MakeSidecar, raw: RawUpstream, name: str
) -> None:
    replies, status, kind = FAILURES[name]
    raw.then(*replies)
    sidecar = await sidecar_on(make_sidecar, raw, max_response_bytes=1 << 20)
    got, headers, data = await call(sidecar, BODY)
    assert got == status, data
    error = json.loads(data)["error"]
    assert set(error) == {"message", "type", "code", "param"} and SECRET.encode() not in data
    event = await the_one_event(sidecar)
    assert (event.status, event.error_kind, event.http_status) == ("error", kind, status)
    assert event.execution_id == headers["X-Promptlab-Execution"]
    if kind in ("auth", "bad_response", "too_large", "connection_lost", "first_token_timeout"):
        assert raw.requests == 1, "not retried"


STREAM_FAILURES = {
    "cut-before-done": (up.sse([b'{"id":"u","choices":[{"delta":{"content":"a"}}]}'], cut=True)),
    "error-event": (
        up.sse(
            [
                b'{"id":"u","choices":[{"delta":{"content":"a"}}]}',
                json.dumps({"error": {"message": f"overloaded {SECRET}"}}).encode(),
            ]
        )
    ),
    "malformed-chunk": (up.sse([b'{"id":"u","choices":[]}', b'{"usage": nope'])),
}


@pytest.mark.parametrize("name", list(STREAM_FAILURES))
async def test_a_broken_stream_ends_with_an_error_event_never_done(
    make_sidecar: MakeSidecar, raw: RawUpstream, name: str
) -> None:
    raw.then(STREAM_FAILURES[name])
    sidecar = await sidecar_on(make_sidecar, raw)
    got, headers, data = await call(sidecar, {**BODY, "stream": True})
    assert got == 200
    assert b"[DONE]" not in data and SECRET.encode() not in data
    last = data.rstrip(b"\n").split(b"\n\n")[-1]
    assert last.startswith(b"data: ")
    assert set(json.loads(last[6:])["error"]) == {"message", "type", "code", "param"}
    event = await the_one_event(sidecar)
    assert event.status == "error" and event.stream and event.error_kind
    assert event.execution_id == headers["X-Promptlab-Execution"]


async def test_a_stream_that_fails_before_its_first_byte_is_an_http_error(
    make_sidecar: MakeSidecar, raw: RawUpstream
) -> None:
    raw.then(up.response(401, ERROR_WITH_KEY))
    sidecar = await sidecar_on(make_sidecar, raw)
    got, _, data = await call(sidecar, {**BODY, "stream": True})
    assert got == 502 and SECRET.encode() not in data
    event = await the_one_event(sidecar)
    assert (event.status, event.error_kind) == ("error", "auth")


async def test_a_gzipped_answer_is_relayed(make_sidecar: MakeSidecar, raw: RawUpstream) -> None:
    raw.then(up.response(body=gzip.compress(up.COMPLETION), headers={"Content-Encoding": "gzip"}))
    sidecar = await sidecar_on(make_sidecar, raw)
    got, headers, data = await call(sidecar, BODY)
    assert got == 200 and json.loads(data)["id"] == headers["X-Promptlab-Execution"]
    event = await the_one_event(sidecar)
    assert event.status == "ok" and event.input_tokens == 3
