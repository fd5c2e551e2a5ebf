"""A scripted HTTP/1.1 upstream on a raw asyncio socket: for failures a real server
would never produce (a connection closed right after reading a POST, a malformed gzip
body, a bad status line, a stream cut before ``[DONE]``).

Each request pops one :data:`Reply` from the script (the default answers 200 with a
small chat completion). A reply is a coroutine ``reply(writer)`` that writes whatever it
likes; returning False closes the connection, True keeps it alive for the next request.
``requests`` counts every request the server read completely.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Reply = Callable[[asyncio.StreamWriter], Awaitable[bool]]

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-raw",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()


def response(
    status: int = 200,
    body: bytes = COMPLETION,
    headers: dict[str, str] | None = None,
    *,
    keep_alive: bool = True,
    reason: str = "OK",
) -> Reply:
    """A complete response with Content-Length."""

    async def reply(writer: asyncio.StreamWriter) -> bool:
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
        head += ["Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if not keep_alive:
            head.append("Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        return keep_alive

    return reply


def raw(data: bytes, *, keep_alive: bool = False) -> Reply:
    """Exactly these bytes, then (by default) close."""

    async def reply(writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return keep_alive

    return reply


def close_after_read() -> Reply:
    """Read the request, answer nothing, close: the upstream may have processed it."""

    async def reply(writer: asyncio.StreamWriter) -> bool:
        return False

    return reply


def hang(seconds: float) -> Reply:
    async def reply(writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(seconds)
        return False

    return reply


def gzipped(body: bytes, *, corrupt: bool = False) -> Reply:
    data = gzip.compress(body)
    if corrupt:
        data = data[:10] + b"\xff" * 16 + data[26:]
    return response(body=data, headers={"Content-Encoding": "gzip"})


def sse(events: list[bytes], *, chunked: bool = True, cut: bool = False) -> Reply:
    """An SSE stream of ``data`` payloads; ``cut``: the connection drops before the end."""

    async def reply(writer: asyncio.StreamWriter) -> bool:
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else "Connection: close\r\n\r\n"
        writer.write(head.encode())
        for event in events:
            data = b"data: " + event + b"\n\n"
            writer.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            await writer.drain()
        if not cut and chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        return False

    return reply


@dataclass
class RawUpstream:
    script: deque[Reply] = field(default_factory=deque)
    requests: int = 0
    connections: int = 0
    bodies: list[bytes] = field(default_factory=list)
    port: int = 0
    received: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a request has been read."""
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def then(self, *replies: Reply) -> RawUpstream:
        self.script.extend(replies)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                self.bodies.append(await reader.readexactly(length))
                self.requests += 1
                self.received.set()
                reply = self.script.popleft() if self.script else response()
                if not await reply(writer):
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._tasks.discard(task)
            writer.close()
