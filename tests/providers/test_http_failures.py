"""Every way an OpenAI-compatible upstream can fail, against real sockets on loopback:
each ends as one of our errors, with the right kind, and is retried only when safe."""

from __future__ import annotations

import asyncio
import gzip
import json
import time

import pytest
import raw_upstream as up
from fake_upstream import FakeUpstream
from provider_kit import BODY, KEY, MakeProviders, make_providers, raw_upstream, settings
from raw_upstream import RawUpstream

from promptlab.providers import (
    AuthFailed,
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ResponseTooLarge,
    UpstreamFailed,
    UpstreamRejected,
)


async def test_a_plain_call_answers_with_tokens(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    p = await make_providers(raw=settings(raw_upstream.base_url))
    answer = await p.complete("raw/m", BODY)
    assert answer.data["choices"][0]["message"]["content"] == "ok"
    assert (answer.prompt_tokens, answer.completion_tokens) == (3, 1)
    assert answer.model == "raw/m" and answer.attempts == [("raw/m", None)]
    assert answer.raw is not None and raw_upstream.requests == 1


async def test_a_post_is_never_sent_twice_when_a_reused_connection_closes(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    # First call: answered, connection kept alive. Second call, on the same connection:
    # the upstream reads it and closes without answering (it may have processed it).
    raw_upstream.then(up.response(), up.close_after_read())
    p = await make_providers(raw=settings(raw_upstream.base_url))
    await p.complete("raw/m", BODY)
    with pytest.raises(ConnectionLost) as caught:
        await p.complete("raw/m", BODY)
    assert raw_upstream.requests == 2, "the second POST reached the upstream exactly once"
    assert raw_upstream.connections == 1
    assert caught.value.kind == "connection_lost" and caught.value.status == 502


async def test_malformed_gzip_is_a_bad_response(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    raw_upstream.then(up.gzipped(up.COMPLETION, corrupt=True))
    p = await make_providers(raw=settings(raw_upstream.base_url))
    with pytest.raises(BadResponse) as caught:
        await p.complete("raw/m", BODY)
    assert caught.value.kind == "bad_response" and raw_upstream.requests == 1


async def test_gzip_is_read(raw_upstream: RawUpstream, make_providers: MakeProviders) -> None:
    raw_upstream.then(up.gzipped(up.COMPLETION))
    p = await make_providers(raw=settings(raw_upstream.base_url))
    answer = await p.complete("raw/m", BODY)
    assert answer.data["choices"][0]["message"]["content"] == "ok"


async def test_a_gzip_bomb_stops_at_the_size_cap(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    bomb = gzip.compress(b"0" * (64 * 1024 * 1024))  # 64 MiB of zeros in ~64 KiB
    raw_upstream.then(up.response(body=bomb, headers={"Content-Encoding": "gzip"}))
    p = await make_providers(raw=settings(raw_upstream.base_url, max_response_bytes=1 << 20))
    with pytest.raises(ResponseTooLarge) as caught:
        await p.complete("raw/m", BODY)
    assert caught.value.kind == "too_large" and caught.value.status == 502


async def test_an_oversized_body_is_refused(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    raw_upstream.then(up.response(body=b"x" * (2 << 20)))
    p = await make_providers(raw=settings(raw_upstream.base_url, max_response_bytes=1 << 20))
    with pytest.raises(ResponseTooLarge):
        await p.complete("raw/m", BODY)


@pytest.mark.parametrize(
    "reply",
    [
        up.raw(b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\n{}"),
        up.raw("HTTP/1.1 200 OK\r\nContent-Length: ²\r\n\r\n{}".encode()),
        up.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
        up.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n{}\r\n0\r\n\r\n"),
        up.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"),
        up.raw(b"not http at all\r\n\r\n"),
        up.response(body=b"<html>not json</html>"),
        up.response(body=b"[1, 2]"),
    ],
    ids=[
        "status-2000",
        "content-length-superscript",
        "conflicting-content-length",
        "chunk-size-minus-one",
        "truncated-body",
        "garbage",
        "not-json",
        "not-an-object",
    ],
)
async def test_malformed_answers_are_our_errors_and_never_resent(
    raw_upstream: RawUpstream, make_providers: MakeProviders, reply: up.Reply
) -> None:
    raw_upstream.then(reply)
    p = await make_providers(raw=settings(raw_upstream.base_url, first_token_timeout_s=2.0))
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await p.complete("raw/m", BODY)
    assert isinstance(caught.value, BadResponse), caught.value
    assert caught.value.kind == "bad_response" and caught.value.status == 502
    assert raw_upstream.requests == 1
    assert time.monotonic() - started < 1.5, "no stall"


async def test_5xx_is_retried_then_fails(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    raw_upstream.then(*[up.response(503, b'{"error": {"message": "busy"}}')] * 3)
    p = await make_providers(raw=settings(raw_upstream.base_url))
    with pytest.raises(UpstreamFailed) as caught:
        await p.complete("raw/m", BODY)
    assert caught.value.kind == "upstream_5xx" and raw_upstream.requests == 3
    assert "busy" in caught.value.message


async def test_retry_after_is_honoured_whatever_its_case(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    raw_upstream.then(up.response(429, b"{}", {"retry-after": "0.3"}), up.response())
    p = await make_providers(raw=settings(raw_upstream.base_url))
    started = time.monotonic()
    answer = await p.complete("raw/m", BODY)
    assert answer.data["choices"] and raw_upstream.requests == 2
    assert time.monotonic() - started >= 0.3, "the retry waited for Retry-After"


async def test_a_retry_after_past_the_deadline_fails_fast(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    raw_upstream.then(
        up.response(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "100"})
    )
    p = await make_providers(raw=settings(raw_upstream.base_url, timeout_s=10))
    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        await p.complete("raw/m", BODY)
    assert time.monotonic() - started < 1.0
    assert raw_upstream.requests == 1 and caught.value.status == 429
    assert caught.value.retry_after_s == 100


async def test_401_is_not_retried_and_the_key_is_redacted(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    body = b'{"error": {"message": "invalid key ' + KEY.encode() + b'"}}'
    raw_upstream.then(up.response(401, body))
    p = await make_providers(raw=settings(raw_upstream.base_url))
    with pytest.raises(AuthFailed) as caught:
        await p.complete("raw/m", BODY)
    assert raw_upstream.requests == 1
    assert KEY not in str(caught.value) and "***" in caught.value.message
    assert caught.value.kind == "auth" and not caught.value.fallback_ok


async def test_a_client_error_keeps_its_status(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    raw_upstream.then(up.response(422, b'{"error": {"message": "bad tools"}}'))
    p = await make_providers(raw=settings(raw_upstream.base_url))
    with pytest.raises(UpstreamRejected) as caught:
        await p.complete("raw/m", BODY)
    assert caught.value.status == 422 and caught.value.kind == "bad_request"


async def test_no_response_headers_in_time_is_a_first_token_timeout(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    raw_upstream.then(up.hang(5))
    p = await make_providers(raw=settings(raw_upstream.base_url, first_token_timeout_s=0.3))
    started = time.monotonic()
    with pytest.raises(ProviderTimeout) as caught:
        await p.complete("raw/m", BODY)
    assert caught.value.kind == "first_token_timeout" and caught.value.status == 504
    assert time.monotonic() - started < 2 and raw_upstream.requests == 1


async def test_the_deadline_includes_the_wait_for_a_pool_slot(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    raw_upstream.then(up.hang(5))
    p = await make_providers(raw=settings(raw_upstream.base_url, max_connections=1))
    busy = asyncio.create_task(p.complete("raw/m", BODY))
    await asyncio.wait_for(raw_upstream.received.wait(), 5)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        await p.complete("raw/m", BODY, timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    busy.cancel()
    with pytest.raises(asyncio.CancelledError):
        await busy


async def test_a_refused_connection_is_retried_then_is_a_connect_error(
    make_providers: MakeProviders,
) -> None:
    server = RawUpstream()
    await server.start()
    url = server.base_url
    await server.stop()  # nothing listens there now
    p = await make_providers(raw=settings(url))
    with pytest.raises(ConnectFailed) as caught:
        await p.complete("raw/m", BODY)
    assert caught.value.kind == "connect" and caught.value.fallback_ok


# ---------------------------------------------------------------------- streams


async def test_a_stream_cut_before_done_is_connection_lost(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    raw_upstream.then(up.sse([b'{"id":"x","choices":[]}'], cut=True))
    p = await make_providers(raw=settings(raw_upstream.base_url))
    stream = await p.stream("raw/m", BODY)
    got: list[bytes] = []
    with pytest.raises(ProviderError) as caught:
        async for payload in stream:
            got.append(payload)
    assert got == [b'{"id":"x","choices":[]}']
    assert caught.value.kind in ("connection_lost", "bad_response")


async def test_a_close_delimited_stream_without_done_is_connection_lost(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    raw_upstream.then(up.sse([b'{"id":"x","choices":[]}'], chunked=False))
    p = await make_providers(raw=settings(raw_upstream.base_url))
    stream = await p.stream("raw/m", BODY)
    with pytest.raises(ConnectionLost):
        async for _ in stream:
            pass


async def test_an_error_event_mid_stream_fails_the_stream_redacted(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    error = b'{"error": {"message": "overloaded, key ' + KEY.encode() + b'"}}'
    raw_upstream.then(up.sse([b'{"id":"x","choices":[{"delta":{"content":"a"}}]}', error]))
    p = await make_providers(raw=settings(raw_upstream.base_url))
    stream = await p.stream("raw/m", BODY)
    with pytest.raises(UpstreamFailed) as caught:
        async for _ in stream:
            pass
    assert caught.value.kind == "stream_error"
    assert KEY not in caught.value.message and "overloaded" in caught.value.message


async def test_a_malformed_gzip_stream_is_a_bad_response(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    body = gzip.compress(b'data: {"id":"x"}\n\ndata: [DONE]\n\n')
    corrupt = body[:10] + b"\xff" * 8 + body[18:]
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
    raw_upstream.then(up.raw(head + b"Content-Length: %d\r\n\r\n" % len(corrupt) + corrupt))
    p = await make_providers(raw=settings(raw_upstream.base_url))
    stream = await p.stream("raw/m", BODY)
    with pytest.raises(BadResponse):
        async for _ in stream:
            pass


async def test_a_stream_is_read_to_done(make_providers: MakeProviders) -> None:
    fake = FakeUpstream()
    await fake.start()
    try:
        p = await make_providers(fake=settings(fake.base_url))
        stream = await p.stream("fake/m", {**BODY, "stream_options": {"include_usage": True}})
        payloads = [payload async for payload in stream]
        assert payloads[-1] == b"[DONE]" and len(payloads) > 3
        assert stream.model == "fake/m"
    finally:
        await fake.stop()


async def test_keys_that_would_redirect_a_call_never_leave(make_providers: MakeProviders) -> None:
    fake = FakeUpstream()
    await fake.start()
    try:
        p = await make_providers(fake=settings(fake.base_url))
        body = {**BODY, "api_base": "http://169.254.169.254/v1", "extra_headers": {"X": "1"}}
        await p.complete("fake/m", body)
        forwarded = fake.requests[-1].body
        assert "api_base" not in forwarded and "extra_headers" not in forwarded
    finally:
        await fake.stop()


async def test_a_cookie_one_answer_sets_is_never_sent_on_later_calls(
    make_providers: MakeProviders,
) -> None:
    # One session serves every caller: an upstream's cookie must not follow the next call.
    fake = FakeUpstream(set_cookie="session=caller-a; Path=/")
    await fake.start()
    try:
        # A host name, not an IP: aiohttp's default jar keeps no cookie of an IP address.
        base = fake.base_url.replace("127.0.0.1", "localhost")
        p = await make_providers(fake=settings(base))
        await p.complete("fake/m", BODY)
        await p.complete("fake/m", BODY)
        assert len(fake.requests) == 2
        assert all("Cookie" not in r.headers for r in fake.requests)
    finally:
        await fake.stop()


def embeddings(rows: object) -> up.Reply:
    return up.response(body=json.dumps({"object": "list", "data": rows}).encode())


async def test_embeddings_come_back_in_input_order_and_malformed_ones_are_bad_responses(
    raw_upstream: RawUpstream, make_providers: MakeProviders
) -> None:
    p = await make_providers(raw=settings(raw_upstream.base_url))
    shuffled = [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}]
    raw_upstream.then(embeddings(shuffled))
    assert await p.embed("raw/e", ["first", "second"]) == [[1.0, 0.0], [0.0, 1.0]]
    malformed = {
        "one row for two texts": [{"index": 0, "embedding": [1.0]}],
        "rows of different lengths": [
            {"index": 0, "embedding": [1.0]}, {"index": 1, "embedding": [1.0, 2.0]}
        ],
        "a repeated index": [{"index": 0, "embedding": [1.0]}, {"index": 0, "embedding": [2.0]}],
        "text where numbers belong": [
            {"index": 0, "embedding": ["x"]}, {"index": 1, "embedding": [2.0]}
        ],
    }  # fmt: skip
    for why, rows in malformed.items():
        raw_upstream.then(embeddings(rows))
        with pytest.raises(BadResponse):
            await p.embed("raw/e", ["first", "second"])
            pytest.fail(why)
    assert await p.embed("raw/e", []) == []
