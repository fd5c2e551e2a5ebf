"""An OpenAI-compatible fake on a free loopback port acting as mutator, model and judge.

Deterministic, and SIMULATED through and through (``bench.evolution_task``):

* ``model = "mutator"``: reads the operator, the parent(s) and the failing cases'
  reasons from the mutation request and answers the simulated mutator's JSON edit
  (seeded by a hash of the request, so a run replays exactly);
* ``model = "model"``: answers which of the task's features its prompt asks for, and
  how many words the prompt has;
* ``model = "judge"``: scores that answer against the needs of the case named in the
  task input (``{"code": "<case>"}``), with reasons such as ``missing: edge cases``.

Modes for the failure tests: ``mutator_mode = "drop_variable"`` (every mutant loses
``{{ code }}``), ``"plain_text"`` (the template as plain text), ``"error"`` (HTTP 500),
``"worse"`` (every mutant loses every feature), ``"no_json_mode"`` (400 to ``response_format``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from bench.evolution_task import (
    BY_NAME,
    CASES,
    FEATURES,
    WORD_ALLOWANCE,
    WORD_PENALTY,
    simulated_mutation,
)

_OPERATOR = re.compile(r"^Instruction \((\w+)\):", re.MULTILINE)
_REASONS = re.compile(r"^  reasons: (.*)$", re.MULTILINE)


def _object_after(text: str, marker: str) -> dict[str, Any] | None:
    start = text.find(marker)
    if start < 0:
        return None
    rest = text[start + len(marker) :].lstrip()
    rest = re.sub(r"^<data-[0-9a-f]+>", "", rest).lstrip()  # the judge's data tags
    value, _ = json.JSONDecoder().raw_decode(rest)
    return value if isinstance(value, dict) else None


@dataclass
class EvolutionUpstream:
    mutator_mode: str = "simulated"
    calls: dict[str, int] = field(default_factory=dict)
    mutation_requests: list[dict[str, Any]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        model = str(body.get("model"))
        self.calls[model] = self.calls.get(model, 0) + 1
        messages = body.get("messages") or []
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        if model == "mutator":
            if self.mutator_mode == "error":
                return web.json_response(
                    {"error": {"message": "mutator down", "type": "server_error", "code": None}},
                    status=500,
                )
            if self.mutator_mode == "no_json_mode" and "response_format" in body:
                return web.json_response(
                    {
                        "error": {
                            "message": "response_format is not supported by this model",
                            "type": "invalid_request_error",
                            "code": None,
                        }
                    },
                    status=400,
                )
            self.mutation_requests.append(body)
            text = self._mutate(user)
        elif model == "judge":
            text = json.dumps(self._judge(user))
        else:
            prompt_text = "\n".join(str(m["content"]) for m in messages)
            present = [f.name for f in FEATURES if f.pattern.search(prompt_text)]
            words = len(prompt_text.split())
            text = f"[simulated] features: {', '.join(present) or 'none'}; words: {words}"
        return web.json_response(
            {
                "id": "chatcmpl-evo",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
            }
        )

    def _mutate(self, user: str) -> str:
        match = _OPERATOR.search(user)
        operator = match.group(1) if match else "rephrase"
        parent = _object_after(user, "Parent variant:") or {}
        other = _object_after(user, "Second parent variant:")
        reasons = [r for line in _REASONS.findall(user) for r in line.split("; ")]
        seed = int.from_bytes(hashlib.sha256(user.encode()).digest()[:8], "big")
        answer = simulated_mutation(
            operator,
            parent.get("system"),
            str(parent.get("template", "")),
            np.random.default_rng(seed),
            other=(other.get("system"), str(other.get("template", ""))) if other else None,
            reasons=reasons,
        )
        if self.mutator_mode == "drop_variable":
            answer["template"] = str(answer["template"]).replace("{{ code }}", "the code")
        if self.mutator_mode == "worse":  # forget everything the parent asked for
            answer["system"], answer["template"] = None, "Tell me about {{ code }}"
        if self.mutator_mode == "plain_text":
            return str(answer["template"])
        return json.dumps(answer)

    @staticmethod
    def _judge(user: str) -> dict[str, Any]:
        inputs = _object_after(user, "Task input:") or {}
        case = str(inputs.get("code", ""))
        answer = user.rpartition("Answer to grade:\n")[2]
        found = re.search(r"features: (.*); words: (\d+)", answer)
        if case not in CASES or found is None:
            return {"score": 0.0, "reason": "not an answer to this task"}
        present = {name.strip() for name in found.group(1).split(",")}
        words = int(found.group(2))
        needs = CASES[case]
        missing = [n for n in needs if n not in present or n not in BY_NAME]
        penalty = max(0, words - WORD_ALLOWANCE) * WORD_PENALTY
        score = max(0.0, (len(needs) - len(missing)) / len(needs) - penalty)
        reasons = [f"missing: {n}" for n in missing] + (
            [f"too long: {words} words"] if penalty else []
        )
        return {"score": round(score, 6), "reason": "; ".join(reasons) or "complete"}
