"""A hostile OpenAI-compatible upstream: every way a provider can fail, on loopback.

The ``model`` of a request picks the failure (the sidecar forwards ``hostile/<name>`` as
``<name>``). Each request is counted by the marker in its last message, so a case can
say how often the upstream saw one call. Error messages echo the ``Authorization``
header the upstream received: a provider that quotes the key back is the worst case
for redaction (case 20).

``429`` (Retry-After: 1), ``429-long`` (Retry-After: 100), ``500``, ``502``, ``503``,
``401``, ``hang`` (no answer for 30 s), ``drop-stream`` (one SSE chunk, then the
connection closes), ``sse-error`` (one chunk, then an SSE error event quoting the key),
``bad-gzip`` (``Content-Encoding: gzip`` over garbage), ``huge`` (a 300 MB body),
``close-reused`` (case 7: the first request on a connection is answered, later ones are
read in full and the connection is closed without a byte).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from typing import Any

from aiohttp import web


def _marker(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    last = messages[-1] if isinstance(messages[-1], dict) else {}
    return str(last.get("content", ""))


def _completion(model: str, text: str = "ok") -> dict[str, Any]:
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def _chunk(model: str, text: str) -> bytes:
    data = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(data).encode() + b"\n\n"


class HostileUpstream:
    """The hostile server; ``await start()``, then ``base_url``."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        """Requests received, by marker."""
        self.times: defaultdict[str, list[float]] = defaultdict(list)
        self.auth_seen: set[str] = set()
        self._per_connection: Counter[int] = Counter()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> str:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _error(self, status: int, auth: str, headers: dict[str, str] | None = None) -> web.Response:
        body = {
            "error": {
                "message": f"hostile failure {status}; your key was {auth}",
                "type": "upstream",
                "code": str(status),
            }
        }
        return web.json_response(body, status=status, headers=headers)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        model = str(body.get("model", ""))
        marker = _marker(body)
        self.seen[marker] += 1
        self.times[marker].append(time.monotonic())
        auth = request.headers.get("Authorization", "")
        self.auth_seen.add(auth)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        port = peer[1] if peer else 0
        self._per_connection[port] += 1
        if model == "429":
            return self._error(429, auth, {"Retry-After": "1"})
        if model == "429-long":
            return self._error(429, auth, {"Retry-After": "100"})
        if model in ("500", "502", "503", "401"):
            return self._error(int(model), auth)
        if model == "hang":
            await asyncio.sleep(30)
            return web.json_response(_completion(model))
        if model == "bad-gzip":
            return web.Response(
                body=b"\x1f\x8b\x08\x00this is not deflate data" * 4,
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
        if model == "huge":
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = 300 << 20
            await response.prepare(request)
            block = b" " * (1 << 20)
            try:
                for _ in range(300):
                    await response.write(block)
            except (ConnectionError, RuntimeError):
                pass
            return response
        if model == "close-reused":
            if self._per_connection[port] > 1 and request.transport is not None:
                request.transport.close()  # read in full, then not a byte of answer
                return web.Response()
            return web.json_response(_completion(model))
        if model in ("drop-stream", "sse-error"):
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(_chunk(model, "partial "))
            if model == "sse-error":
                error = {"error": {"message": f"mid-stream failure; key {auth}", "code": "boom"}}
                await response.write(b"data: " + json.dumps(error).encode() + b"\n\n")
            if request.transport is not None:
                request.transport.close()
            return response
        return web.json_response(_completion(model))
