"""The simulated provider (``kind = "simulated"``): deterministic answers, no network.

For the demo and tests. Every response is labelled: ``system_fingerprint`` is
``"promptlab-simulated"`` and the text starts with ``[simulated <model>]``, so a
simulated answer can never be mistaken for a model's.

The answer is a function of the model name and the messages only: the same request
gets the same answer, byte for byte (the ``id`` and ``created`` fields aside). Token
counts are whitespace-separated words, which is close enough for cost and dashboards.

Model names with a meaning: ``simulated/error`` always fails (a 502 from "upstream"),
which lets tests and the demo exercise the challenger-to-champion fallback.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from promptlab.providers import simulated_tasks
from promptlab.providers.errors import UpstreamFailed

FINGERPRINT = "promptlab-simulated"

_WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def answer(model: str, messages: list[dict[str, Any]]) -> str:
    """The deterministic answer for ``messages``."""
    prompt = "\n".join(
        f"{m.get('role')}:{_text_of(m.get('content'))}" for m in messages if isinstance(m, dict)
    )
    digest = hashlib.sha256(f"{model}\n{prompt}".encode()).digest()
    last_user = next(
        (
            _text_of(m.get("content"))
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        "",
    )
    echo = " ".join(last_user.split()[:12])
    words = " ".join(_WORDS[b % len(_WORDS)] for b in digest[:8])
    return f"[simulated {model}] {echo} -> {words}".strip()


def _usage(messages: list[dict[str, Any]], text: str) -> dict[str, int]:
    prompt_tokens = sum(
        len(_text_of(m.get("content")).split()) + 3 for m in messages if isinstance(m, dict)
    )
    completion_tokens = len(text.split())
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _check(model: str) -> None:
    if model == "error":
        raise UpstreamFailed(
            "simulated upstream failure (model simulated/error always fails)",
            kind="simulated_error",
            upstream_status=500,
        )


def complete(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """A chat completion in OpenAI's shape."""
    _check(model)
    messages = body.get("messages") or []
    text = simulated_tasks.answer(model, body) or answer(model, messages)
    return {
        "id": f"chatcmpl-sim-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(messages, text),
    }


async def stream(model: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
    """The same answer as SSE ``data`` payloads, one word per chunk, then usage and [DONE].

    The usage chunk is sent when ``stream_options.include_usage`` asks for it, as OpenAI does.
    """
    _check(model)
    messages = body.get("messages") or []
    text = simulated_tasks.answer(model, body) or answer(model, messages)
    cid = f"chatcmpl-sim-{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        return json.dumps(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": FINGERPRINT,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            },
            separators=(",", ":"),
        ).encode()

    yield chunk({"role": "assistant", "content": ""}, None)
    words = text.split(" ")
    for i, word in enumerate(words):
        yield chunk({"content": word if i == 0 else " " + word}, None)
    yield chunk({}, "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        yield json.dumps(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": FINGERPRINT,
                "choices": [],
                "usage": _usage(messages, text),
            },
            separators=(",", ":"),
        ).encode()
    yield b"[DONE]"
