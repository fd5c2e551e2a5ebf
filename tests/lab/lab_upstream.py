"""A deterministic OpenAI-compatible fake that answers as a model and as an LLM judge.

As a model it answers ``"<marker> case=<case> quality=<q>"``: ``<marker>`` is the first
``[...]`` tag of the user message (the variant's template carries it), ``<case>`` the
rest of the message, and ``q`` the next value of ``table[(model, marker, case)]`` (one
per call, in order: the repeats). As a judge (the lab's judge system message) it
returns ``{"score": q, "reason": ...}`` for the ``quality=q`` in the answer it grades,
or, when that answer contains ``GARBLE``, text that is not JSON.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from promptlab.lab.evaluators import JUDGE_SYSTEM

PRICES = {"fake/cheap": (1e-6, 2e-6), "fake/pricey": (1e-5, 3e-5), "fake/judge": (1e-6, 1e-6)}
"""USD per prompt token and per completion token, by model (``Providers(cost=price)``)."""


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    p = PRICES.get(model)
    return None if p is None else prompt_tokens * p[0] + completion_tokens * p[1]


MODEL_USAGE = (10, 5)
JUDGE_USAGE = (20, 3)


@dataclass
class LabUpstream:
    table: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    garble: set[tuple[str, str]] = field(default_factory=set)
    """(marker, case) pairs whose answers the judge cannot grade."""
    fail_models: set[str] = field(default_factory=set)
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """Calls received per model."""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    """Every request body, in arrival order."""
    _next: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = "fake/" + body["model"]  # the provider strips its name; keys use provider/model
        self.calls[model] += 1
        self.bodies.append(body)
        if model in self.fail_models:
            return web.json_response(
                {"error": {"message": "down", "type": "server_error"}}, status=500
            )
        messages = body["messages"]
        user = messages[-1]["content"]
        if messages[0]["content"] == JUDGE_SYSTEM:
            text, usage = self._judge(user), JUDGE_USAGE
        else:
            text, usage = self._answer(model, user), MODEL_USAGE
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": usage[0],
                    "completion_tokens": usage[1],
                    "total_tokens": sum(usage),
                },
            }
        )

    def _answer(self, model: str, user: str) -> str:
        match = re.match(r"\s*(\[[^\]]+\])\s*(.*)", user, re.S)
        marker, case = (match.group(1), match.group(2).strip()) if match else ("", user.strip())
        key = (model, marker, case)
        values = self.table[key]
        q = values[self._next[key] % len(values)]
        self._next[key] += 1
        garble = " GARBLE" if (marker, case) in self.garble else ""
        return f"{marker} case={case} quality={q}{garble}"

    def _judge(self, user: str) -> str:
        graded = user.split("Answer to grade:", 1)[1]
        if "GARBLE" in graded:
            return "I would say it is rather good."
        q = float(re.search(r"quality=([0-9.]+)", graded).group(1))  # type: ignore[union-attr]
        return json.dumps({"score": q, "reason": f"fake judge read quality {q}"})
