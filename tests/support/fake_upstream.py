"""A real OpenAI-compatible upstream on a free loopback port, for tests and the bench.

``POST /v1/chat/completions``, non-streamed and streamed (SSE, with the usage chunk
when ``stream_options.include_usage`` asks for it). It answers deterministically (the
last user message echoed), records what it received (so tests assert what the sidecar
forwarded), and can be told to fail: :meth:`FakeUpstream.fail_next` (status, Retry-After),
:meth:`FakeUpstream.hang_next` (no answer for a while), ``fail_models`` (a model that
always fails) and ``chunk_delay_s`` (a slow stream, to cancel mid-way).

``POST /v1/embeddings`` answers :func:`fake_embedding` of each input: deterministic
vectors that put synonyms together, so tests can tell retrieval by meaning from
retrieval by shared words; ``embedding_status`` and ``embedding_delay_s`` make it fail
or slow.

Run alone for the bench: ``python tests/support/fake_upstream.py --port 9001``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    """One request as the upstream saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    client_port: int = 0
    """The caller's TCP port: equal ports mean one keep-alive connection."""


@dataclass
class _Action:
    status: int = 200
    retry_after: str | None = None
    hang_s: float = 0.0
    message: str = "fake upstream failure"


@dataclass
class FakeUpstream:
    """The fake server; ``await start()`` returns its ``/v1`` base URL."""

    record: bool = True
    chunk_delay_s: float = 0.0
    fail_models: dict[str, int] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    cancelled_streams: int = 0
    """Streams whose client (the sidecar) went away before the end."""
    set_cookie: str | None = None
    """A ``Set-Cookie`` value sent with every completion (None: no cookie)."""
    reply: Callable[[dict[str, Any]], str] | None = None
    """Answers chat completions in place of the echo (e.g. an answer that depends on
    whether the request carried demonstrations)."""
    client_max_size: int = 1024**2
    """The largest request body it takes (aiohttp's default: 1 MiB)."""
    embedding_status: int = 200
    """What ``/v1/embeddings`` answers: 200 (vectors) or an error status (an outage)."""
    embedding_delay_s: float = 0.0
    """How long ``/v1/embeddings`` waits before it answers (a slow embedding model)."""
    embedded: int = 0
    """Texts ``/v1/embeddings`` embedded so far."""
    _script: deque[_Action] = field(default_factory=deque)
    _runner: web.AppRunner | None = None
    port: int = 0

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: str | None = None,
        message: str = "fake upstream failure",
    ) -> None:
        """The next ``times`` calls answer ``status`` with an OpenAI-shaped error."""
        for _ in range(times):
            self._script.append(_Action(status=status, retry_after=retry_after, message=message))

    def hang_next(self, seconds: float, times: int = 1) -> None:
        """The next ``times`` calls wait ``seconds`` before answering."""
        for _ in range(times):
            self._script.append(_Action(hang_s=seconds))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.client_max_size)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/{endpoint:embeddings|completions|responses}", self._other)
        return app

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, keepalive_timeout: float = 75.0
    ) -> str:
        """``keepalive_timeout``: how long an idle keep-alive connection stays open."""
        self._runner = web.AppRunner(
            self.app(), access_log=None, keepalive_timeout=keepalive_timeout
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ handler

    async def _other(self, request: web.Request) -> web.Response:
        """Embeddings, legacy completions and the Responses API, in their OpenAI shapes."""
        body = json.loads(await request.read())
        if self.record:
            self.requests.append(Received(request.path, dict(request.headers), body))
        action = self._script.popleft() if self._script else None
        if action is not None and action.status != 200:
            error = {"error": {"message": action.message, "type": "server_error"}}
            return web.json_response(error, status=action.status)
        endpoint = request.match_info["endpoint"]
        if endpoint == "embeddings":
            return await self._embeddings(body)
        if endpoint == "completions":
            return web.json_response(
                {
                    "id": "cmpl-fake",
                    "object": "text_completion",
                    "model": body.get("model"),
                    "choices": [{"index": 0, "text": "echo: " + str(body.get("prompt")),
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
                }
            )  # fmt: skip
        return web.json_response(
            {
                "id": "resp_fake",
                "object": "response",
                "model": body.get("model"),
                "output": [
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": [
                            {"type": "output_text", "text": "echo: " + str(body.get("input"))}
                        ],
                    }
                ],
                "usage": {"input_tokens": 6, "output_tokens": 3, "total_tokens": 9},
            }
        )

    async def _embeddings(self, body: dict[str, Any]) -> web.Response:
        if self.embedding_delay_s:
            await asyncio.sleep(self.embedding_delay_s)
        if self.embedding_status != 200:
            error = {"error": {"message": "fake embeddings outage", "type": "server_error"}}
            return web.json_response(error, status=self.embedding_status)
        inputs = body.get("input")
        texts = [str(t) for t in inputs] if isinstance(inputs, list) else [str(inputs)]
        self.embedded += len(texts)
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": fake_embedding(text)}
                    for i, text in enumerate(texts)
                ],
                "model": body.get("model"),
                "usage": {"prompt_tokens": 4 * len(texts), "total_tokens": 4 * len(texts)},
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        if self.record:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.requests.append(
                Received(request.path, dict(request.headers), body, peer[1] if peer else 0)
            )
        action = self._script.popleft() if self._script else None
        if action is not None and action.hang_s:
            await asyncio.sleep(action.hang_s)
        status = (
            action.status
            if action is not None
            else self.fail_models.get(str(body.get("model")), 200)
        )
        if status != 200:
            headers = (
                {"Retry-After": action.retry_after}
                if action is not None and action.retry_after
                else None
            )
            message = action.message if action is not None else "fake upstream failure"
            if status == 404 and action is None:  # as OpenAI answers a model it does not have
                message = f"The model `{body.get('model')}` does not exist"
            error = {
                "error": {
                    "message": message,
                    "type": "server_error" if status >= 500 else "invalid_request_error",
                    "code": "model_not_found" if status == 404 else None,
                    "param": None,
                }
            }
            return web.json_response(error, status=status, headers=headers)
        text = self.reply(body) if self.reply is not None else reply_text(body)
        usage = {
            "prompt_tokens": 10,
            "completion_tokens": len(text.split()),
            "total_tokens": 10 + len(text.split()),
        }
        if body.get("stream"):
            return await self._stream(request, body, text, usage)
        return web.json_response(
            {
                "id": "chatcmpl-fake123",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            },
            headers={"Set-Cookie": self.set_cookie} if self.set_cookie else None,
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], text: str, usage: dict[str, int]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": "chatcmpl-fake123",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            out = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                out["usage"] = None
            return out

        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [
            chunk({"content": w if i == 0 else " " + w}, None)
            for i, w in enumerate(text.split(" "))
        ]
        events.append(chunk({}, "stop"))
        if include_usage:
            events.append({**base, "choices": [], "usage": usage})
        try:
            for event in events:
                await response.write(
                    b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
                )
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionError, asyncio.CancelledError):
            self.cancelled_streams += 1
            raise
        return response


EMBEDDING_DIM = 64
"""Length of the fake's embeddings."""
SYNONYMS: dict[str, str] = {
    word: concept
    for concept, words in {
        "bad": ("bad", "awful", "terrible", "dreadful", "horrible", "lousy", "poor"),
        "good": ("good", "great", "excellent", "superb", "wonderful", "lovely", "fine"),
        "film": ("film", "movie", "picture", "flick", "cinema"),
        "food": ("food", "meal", "dinner", "dish", "cuisine"),
        "phone": ("phone", "handset", "mobile", "cellphone"),
        "battery": ("battery", "charge", "power"),
    }.items()
    for word in words
}
"""Words the fake embeds alike: its embeddings know synonyms, which BM25 cannot."""


def fake_embedding(text: str) -> list[float]:
    """A deterministic embedding with meaning: a hashed bag of words, each word first
    mapped to its concept (:data:`SYNONYMS`), of unit length (zeros for no words).
    "an awful movie" and "a dreadful picture" are near; "an awful lot" is not."""
    vector = [0.0] * EMBEDDING_DIM
    for word in re.findall(r"\w\w+", text.lower()):
        concept = SYNONYMS.get(word, word)
        digest = hashlib.blake2b(concept.encode(), digest_size=4).digest()
        vector[int.from_bytes(digest, "big") % EMBEDDING_DIM] += 1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


def parity(body: dict[str, Any]) -> str:
    """A model that answers ``even`` to everything, unless it was shown demonstrations of
    both labels: then it answers right (the last number in the call's last message).
    For tests where demonstrations must help, and only a diverse set does."""
    messages = body["messages"]
    shown = {m["content"] for m in messages if m["role"] == "assistant"}
    number = int(re.findall(r"\d+", messages[-1]["content"])[-1])
    if {"even", "odd"} <= shown:
        return "even" if number % 2 == 0 else "odd"
    return "even"


def reply_text(body: dict[str, Any]) -> str:
    """``echo: <last user message>`` (first 20 words)."""
    messages = body.get("messages") or []
    last = next(
        (
            m.get("content")
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        "",
    )
    return "echo: " + " ".join(str(last).split()[:20])


def main() -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible fake upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        FakeUpstream(record=False).app(),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
