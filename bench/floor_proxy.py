"""The floor of a routed, recorded call: the least any routed proxy on aiohttp must do.

:mod:`bench.peers` compares ``promptlab serve`` with a bare aiohttp proxy, which forwards
bytes and does nothing else. A routed call must do more whatever its implementation:
parse the caller's JSON, pick a variant by Thompson sampling, render the variant's
template, encode the upstream body, parse the model's answer to put the execution id in
it, encode an execution event and publish it to JetStream with an acknowledgement (the
record of the call). This module is that work and nothing else, written as lean as we
can (orjson, one jinja2 template compiled once, one Beta draw per arm, events published
in batches through nats-py's ``publish_async`` with one wait per batch): no validation,
no guard, no metrics, no fallback, no redaction, no outbox, no deadlines.

It is a measuring stick, not a product: what it costs over the bare proxy is what the
functions of a routed call cost on this stack, so ``serve``'s ratio to the bare proxy
cannot pass this one's. ``bench.peers`` runs it as the peer ``routed floor``.

``python -m bench.floor_proxy PORT UPSTREAM_PORT NATS_URL [--no-events]`` (``--no-events``:
the same without publishing, to see what recording the call costs)
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from typing import Any

STREAM = "FLOOR"
SUBJECT = "floor.executions"
BATCH = 64
"""Events per JetStream batch (serve's publisher batches alike)."""


def main(port: int, upstream_port: int, nats_url: str, events: bool = True) -> None:
    import jinja2
    import nats
    import orjson
    import uvloop
    from aiohttp import ClientSession, TCPConnector, web

    upstream = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
    templates = {
        "a": jinja2.Environment(autoescape=False).from_string("Answer: {{ q }}"),
        "b": jinja2.Environment(autoescape=False).from_string("Answer briefly: {{ q }}"),
    }
    arms = {"a": [1.0, 1.0], "b": [1.0, 1.0]}
    pending: list[bytes] = []
    wake = asyncio.Event()

    async def publish_batches(app: web.Application) -> None:
        js = app["js"]
        while True:
            await wake.wait()
            wake.clear()
            while pending:
                batch = pending[:BATCH]
                del pending[:BATCH]
                acks = [await js.publish_async(SUBJECT, event) for event in batch]
                await asyncio.gather(*acks)

    async def lifecycle(app: web.Application) -> Any:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await js.add_stream(name=STREAM, subjects=[SUBJECT])
        app["js"] = js
        app["session"] = ClientSession(connector=TCPConnector(limit=512))
        pump = asyncio.create_task(publish_batches(app))
        yield
        pump.cancel()
        await app["session"].close()
        await nc.close()

    async def chat(request: web.Request) -> web.Response:
        started = time.perf_counter()
        body = orjson.loads(await request.read())
        variables = body["promptlab"]["variables"]
        variant = max(arms, key=lambda name: random.betavariate(*arms[name]))
        messages = [{"role": "user", "content": templates[variant].render(variables)}]
        upstream_body = orjson.dumps({"model": f"model-{variant}", "messages": messages})
        async with request.app["session"].post(
            upstream, data=upstream_body, headers={"Content-Type": "application/json"}
        ) as resp:
            answer = orjson.loads(await resp.read())
        execution_id = f"chatcmpl-{uuid.uuid4().hex}"
        answer["id"] = execution_id
        usage = answer.get("usage") or {}
        pending.append(
            orjson.dumps(
                {
                    "type": "execution.completed",
                    "execution_id": execution_id,
                    "prompt_id": "bench",
                    "variant": variant,
                    "model": f"fake/model-{variant}",
                    "latency_ms": (time.perf_counter() - started) * 1000.0,
                    "input_tokens": usage.get("prompt_tokens", 0),
                    "output_tokens": usage.get("completion_tokens", 0),
                    "status": "ok",
                    "ts": time.time(),
                }
            )
        )
        if events:
            wake.set()
        else:
            pending.clear()
        return web.Response(
            body=orjson.dumps(answer),
            content_type="application/json",
            headers={"X-Promptlab-Execution": execution_id},
        )

    app = web.Application()
    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/v1/chat/completions", chat)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], "--no-events" not in sys.argv[4:])
