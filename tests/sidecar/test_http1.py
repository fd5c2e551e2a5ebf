"""The hot-path HTTP/1.1 client against real servers: the aiohttp fake upstream, and
raw asyncio servers for what aiohttp will not do on request (close mid-answer, gzip,
read-until-close bodies, interim 1xx responses, garbage)."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fake_upstream import FakeUpstream

from sidecar import http1

JSON_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-test"}


def body(content: str = "hello", **extra: Any) -> bytes:
    return json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": content}], **extra}
    ).encode()


async def post(
    pool: http1.Pool,
    url: str,
    data: bytes,
    *,
    read_timeout: float = 5.0,
    total: float = 10.0,
    connect_timeout: float = 2.0,
) -> http1.Response:
    origin = http1.Origin(url)
    deadline = asyncio.get_running_loop().time() + total
    return await pool.request(
        origin,
        http1.request_head(origin, JSON_HEADERS),
        data,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        deadline=deadline,
    )


@pytest.fixture
async def pool() -> AsyncIterator[http1.Pool]:
    p = http1.Pool(limit=8)
    yield p
    await p.close()


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.stop()


def chat_url(fake: FakeUpstream) -> str:
    return fake.base_url + "/chat/completions"


# ---------------------------------------------------------------------- aiohttp fake upstream


async def test_non_streamed_call_returns_status_headers_and_body(
    pool: http1.Pool, upstream: FakeUpstream
) -> None:
    resp = await post(pool, chat_url(upstream), body("what is 2+2"))
    data = json.loads(await resp.read())
    assert resp.status == 200 and resp.headers["content-type"].startswith("application/json")
    assert data["choices"][0]["message"]["content"] == "echo: what is 2+2"
    seen = upstream.requests[-1]
    assert (
        seen.headers["Authorization"] == "Bearer sk-test"
        and seen.body["messages"][0]["content"] == "what is 2+2"
    )
    assert seen.headers["Host"] == f"127.0.0.1:{upstream.port}"


async def test_keep_alive_connection_is_reused(pool: http1.Pool, upstream: FakeUpstream) -> None:
    for i in range(5):
        resp = await post(pool, chat_url(upstream), body(f"call {i}"))
        assert resp.status == 200
        await resp.read()
    assert len({r.client_port for r in upstream.requests}) == 1


async def test_concurrent_calls_open_parallel_connections_up_to_the_limit(
    upstream: FakeUpstream,
) -> None:
    pool = http1.Pool(limit=3)
    upstream.hang_next(0.1, times=6)
    try:

        async def one(i: int) -> bytes:
            return await (await post(pool, chat_url(upstream), body(f"c{i}"))).read()

        answers = await asyncio.gather(*(one(i) for i in range(6)))
    finally:
        await pool.close()
    assert all(json.loads(a)["choices"] for a in answers)
    assert len({r.client_port for r in upstream.requests}) == 3


async def test_error_status_body_is_readable_and_connection_reused(
    pool: http1.Pool, upstream: FakeUpstream
) -> None:
    upstream.fail_next(503, retry_after="2", message="overloaded")
    resp = await post(pool, chat_url(upstream), body())
    assert resp.status == 503 and resp.headers["retry-after"] == "2"
    assert json.loads(await resp.read())["error"]["message"] == "overloaded"
    resp = await post(pool, chat_url(upstream), body())
    assert resp.status == 200
    await resp.read()
    assert upstream.requests[0].client_port == upstream.requests[1].client_port


async def test_streamed_chunked_response_arrives_in_pieces(
    pool: http1.Pool, upstream: FakeUpstream
) -> None:
    upstream.chunk_delay_s = 0.01
    resp = await post(pool, chat_url(upstream), body("one two three", stream=True))
    assert resp.headers.get("transfer-encoding") == "chunked"
    pieces = [chunk async for chunk in resp.iter_chunks()]
    text = b"".join(pieces)
    assert len(pieces) > 3  # delivered as it came, not at the end
    events = [line[6:] for line in text.split(b"\n\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]"
    words = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert words == "echo: one two three"
    # A stream read to its end gives its connection back.
    again = await post(pool, chat_url(upstream), body())
    await again.read()
    assert upstream.requests[0].client_port == upstream.requests[1].client_port


async def test_closing_a_stream_early_cancels_the_upstream_call(
    pool: http1.Pool, upstream: FakeUpstream
) -> None:
    upstream.chunk_delay_s = 0.05
    resp = await post(pool, chat_url(upstream), body("a b c d e f g h", stream=True))
    async for _ in resp.iter_chunks():
        break
    resp.close()
    for _ in range(100):
        if upstream.cancelled_streams:
            break
        await asyncio.sleep(0.02)
    assert upstream.cancelled_streams == 1
    resp = await post(pool, chat_url(upstream), body())
    assert resp.status == 200 and json.loads(await resp.read())["choices"]


async def test_read_timeout_when_the_upstream_hangs(
    pool: http1.Pool, upstream: FakeUpstream
) -> None:
    upstream.hang_next(2.0)
    started = asyncio.get_running_loop().time()
    with pytest.raises(http1.ReadTimeout, match=r"no data for 0\.2s"):
        await post(pool, chat_url(upstream), body(), read_timeout=0.2)
    assert asyncio.get_running_loop().time() - started < 1.0
    # The hung connection was dropped: the next call gets a fresh one and an answer.
    resp = await post(pool, chat_url(upstream), body())
    assert resp.status == 200
    await resp.read()
    assert upstream.requests[0].client_port != upstream.requests[1].client_port


async def test_deadline_bounds_the_whole_call(pool: http1.Pool, upstream: FakeUpstream) -> None:
    upstream.hang_next(2.0)
    with pytest.raises(TimeoutError, match="deadline"):
        await post(pool, chat_url(upstream), body(), read_timeout=60.0, total=0.2)


async def test_connection_refused_is_a_connect_error(pool: http1.Pool) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(http1.ConnectError) as caught:
        await post(pool, f"http://127.0.0.1:{port}/v1/chat/completions", body())
    assert isinstance(caught.value.os_error, ConnectionRefusedError)


async def test_idle_connection_closed_by_the_server_is_not_reused() -> None:
    fake = FakeUpstream()
    await fake.start(keepalive_timeout=0.05)
    pool = http1.Pool()
    try:
        first = await post(pool, chat_url(fake), body())
        await first.read()
        await asyncio.sleep(0.3)  # the server closes the idle connection meanwhile
        second = await post(pool, chat_url(fake), body())
        assert second.status == 200
        await second.read()
    finally:
        await pool.close()
        await fake.stop()
    assert fake.requests[0].client_port != fake.requests[1].client_port


async def test_connections_idle_longer_than_keepalive_are_replaced(upstream: FakeUpstream) -> None:
    pool = http1.Pool(keepalive_s=0.05)
    try:
        await (await post(pool, chat_url(upstream), body())).read()
        await asyncio.sleep(0.1)
        await (await post(pool, chat_url(upstream), body())).read()
    finally:
        await pool.close()
    assert upstream.requests[0].client_port != upstream.requests[1].client_port


async def test_cancelled_call_drops_its_connection(
    pool: http1.Pool, upstream: FakeUpstream
) -> None:
    upstream.hang_next(1.0)
    task = asyncio.create_task(post(pool, chat_url(upstream), body()))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    resp = await post(pool, chat_url(upstream), body())
    assert resp.status == 200
    await resp.read()
    assert upstream.requests[0].client_port != upstream.requests[1].client_port


# ---------------------------------------------------------------------- raw servers


Handler = Callable[[bytes, asyncio.Transport, int], None]
"""Called with one request (head + body), the transport, and the request's index on it."""


class RawServer(asyncio.Protocol):
    def __init__(self, handler: Handler, log: list[int]) -> None:
        self.handler, self.log, self.buf, self.count = handler, log, b"", 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.log.append(id(self))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower()
        at = head.index(b"content-length:") + 15
        nl = head.find(b"\r\n", at)
        length = int(head[at : nl if nl > 0 else len(head)])
        if len(self.buf) < end + 4 + length:
            return
        request, self.buf = self.buf[: end + 4 + length], self.buf[end + 4 + length :]
        assert self.transport is not None
        self.handler(request, self.transport, self.count)
        self.count += 1


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Any]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> tuple[str, list[int]]:
        log: list[int] = []
        server = await asyncio.get_running_loop().create_server(
            lambda: RawServer(handler, log), "127.0.0.1", 0
        )
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1/chat/completions", log

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


OK_BODY = b'{"ok":true}'
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n" + OK_BODY


async def test_stale_keep_alive_connection_is_retried_once_on_a_new_one(
    pool: http1.Pool, raw_server: Any
) -> None:
    # The server answers the first request, then closes the connection on the second
    # without a byte (as when its keep-alive timer fires while we send).
    def handler(request: bytes, transport: asyncio.Transport, index: int) -> None:
        if index == 0:
            transport.write(OK)
        else:
            transport.close()

    url, connections = await raw_server(handler)
    assert await (await post(pool, url, body())).read() == OK_BODY
    assert await (await post(pool, url, body())).read() == OK_BODY
    assert len(connections) == 2


async def test_connection_closed_mid_response_is_connection_lost(
    pool: http1.Pool, raw_server: Any
) -> None:
    def handler(request: bytes, transport: asyncio.Transport, index: int) -> None:
        transport.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial":')
        transport.close()

    url, connections = await raw_server(handler)
    resp = await post(pool, url, body())
    with pytest.raises(http1.ConnectionLost):
        await resp.read()
    assert len(connections) == 1  # a fresh connection answered partly: never sent twice


async def test_connection_closed_before_the_answer_on_a_new_connection_is_not_retried(
    pool: http1.Pool, raw_server: Any
) -> None:
    url, connections = await raw_server(lambda request, transport, index: transport.close())
    with pytest.raises(http1.ConnectionLost):
        await post(pool, url, body())
    assert len(connections) == 1


async def test_chunked_body_with_extensions_and_trailers(pool: http1.Pool, raw_server: Any) -> None:
    def handler(request: bytes, transport: asyncio.Transport, index: int) -> None:
        transport.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
        )
        transport.write(b"7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n")

    url, connections = await raw_server(handler)
    for _ in range(2):
        assert await (await post(pool, url, body())).read() == b"hello, world"
    assert len(connections) == 1


async def test_chunked_body_split_at_every_byte(pool: http1.Pool, raw_server: Any) -> None:
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"

    def handler(request: bytes, transport: asyncio.Transport, index: int) -> None:
        loop = asyncio.get_running_loop()
        for i in range(len(response)):
            loop.call_later(0.001 * i, transport.write, response[i : i + 1])

    url, _ = await raw_server(handler)
    assert await (await post(pool, url, body())).read() == b"abc0123456789abcdef"


async def test_body_until_close_and_connection_close_are_not_reused(
    pool: http1.Pool, raw_server: Any
) -> None:
    def handler(request: bytes, transport: asyncio.Transport, index: int) -> None:
        transport.write(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n"
            + OK_BODY
        )
        transport.close()

    url, connections = await raw_server(handler)
    assert await (await post(pool, url, body())).read() == OK_BODY
    assert await (await post(pool, url, body())).read() == OK_BODY
    assert len(connections) == 2


async def test_interim_100_response_is_skipped(pool: http1.Pool, raw_server: Any) -> None:
    url, _ = await raw_server(
        lambda request, transport, index: transport.write(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)
    )
    resp = await post(pool, url, body())
    assert resp.status == 200 and await resp.read() == OK_BODY


async def test_gzip_body_is_decoded(pool: http1.Pool, raw_server: Any) -> None:
    packed = gzip.compress(b'{"compressed":true}')

    def handler(request: bytes, transport: asyncio.Transport, index: int) -> None:
        transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)
            + packed
        )

    url, _ = await raw_server(handler)
    assert await (await post(pool, url, body())).read() == b'{"compressed":true}'


async def test_garbage_is_a_protocol_error(pool: http1.Pool, raw_server: Any) -> None:
    url, _ = await raw_server(
        lambda request, transport, index: transport.write(b"SSH-2.0-OpenSSH\r\n\r\n")
    )
    with pytest.raises(http1.ProtocolError):
        await post(pool, url, body())


async def test_header_values_cannot_smuggle_lines() -> None:
    origin = http1.Origin("http://127.0.0.1:1/v1/chat/completions")
    with pytest.raises(ValueError):
        http1.request_head(origin, {"X-Evil": "a\r\nHost: elsewhere"})
    head = http1.request_head(origin, {"Content-Type": "application/json", "Host": "ignored"})
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:1\r\n")
    assert b"ignored" not in head and head.endswith(b"Content-Length: ")


async def test_a_call_finishing_after_pool_close_closes_its_connection(
    upstream: FakeUpstream,
) -> None:
    pool = http1.Pool()
    upstream.hang_next(0.2)
    resp = await post(pool, chat_url(upstream), body())
    conn = resp._conn
    await pool.close()
    assert json.loads(await resp.read())["choices"]
    assert conn is not None and conn.closed
