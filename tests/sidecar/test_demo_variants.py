"""Demonstration variants through the real HTTP path: what reaches the model, what is recorded,
and one published pool served identically by two replicas."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import SECRET, MakeSidecar

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.models import ExecutionCompleted
from promptlab.events.snapshots import DemoPoolSnapshot, DemoRecord
from promptlab.events.subjects import Bucket, demo_pool_key
from promptlab.prompts import PromptSpec


def sentiment(demos: dict[str, Any], template: str = "Text: {{ text }}") -> PromptSpec:
    """One variant that always serves (fixed weights), showing demonstrations."""
    return PromptSpec.model_validate(
        {
            "id": "sentiment",
            "variables": [{"name": "text", "type": "string", "required": True}],
            "routing": {"strategy": "fixed", "weights": {"plain": 0.0, "demos": 1.0}},
            "examples": [
                {"name": "pos", "variables": {"text": "a lovely warm film"}, "expected": "positive"},
                {"name": "neg", "variables": {"text": "a dull cold film"}, "expected": "negative"},
                {"name": "key", "variables": {"text": f"leaked {SECRET}"}, "expected": SECRET},
            ],
            "variants": [
                {"name": "plain", "model": "fake/m", "template": "Text: {{ text }}",
                 "champion": True},
                {"name": "demos", "model": "fake/m", "system": "Label it.", "template": template,
                 "demos": demos},
            ],
        }
    )  # fmt: skip


async def call(sidecar: Any, text: str) -> str:
    client = sidecar.client()
    raw = await client.chat.completions.with_raw_response.create(
        model="promptlab/sentiment",
        messages=[],
        extra_body={"promptlab": {"variables": {"text": text}}},
    )
    return str(raw.headers["x-promptlab-execution"])


async def test_examples_pool_turns_reach_the_model_and_the_execution_names_them(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(prompts=[sentiment({"k": 2, "pool": "examples"})])
    execution = await call(sidecar, "a warm lovely story")

    sent = sidecar.upstream.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert sent[-1] == {"role": "user", "content": "Text: a warm lovely story"}
    assert sent[-3:-1] == [
        {"role": "user", "content": "Text: a lovely warm film"},
        {"role": "assistant", "content": "positive"},
    ]  # the nearest demonstration sits next to the call
    assert {sent[2]["content"], sent[4]["content"]} == {"negative", "positive"}
    assert all(SECRET not in m["content"] for m in sent)
    (event,) = [
        e for e in await sidecar.wait_events("execution.completed", 1)
        if isinstance(e, ExecutionCompleted) and e.execution_id == execution
    ]  # fmt: skip
    assert event.demos == ["example:neg", "example:pos"]


async def test_a_block_variant_gets_its_demos_in_the_template(make_sidecar: MakeSidecar) -> None:
    prompt = sentiment(
        {"k": 1, "pool": "examples", "format": "block"},
        template="Examples:\n{{ demos }}\nNow: {{ text }}",
    )
    sidecar = await make_sidecar(prompts=[prompt])
    await call(sidecar, "so dull and cold")
    sent = sidecar.upstream.requests[-1].body["messages"]
    assert sent == [
        {"role": "system", "content": "Label it."},
        {
            "role": "user",
            "content": "Examples:\nExample 1:\ntext: a dull cold film\nAnswer: negative\n"
            "Now: so dull and cold",
        },
    ]


async def test_a_production_pool_is_served_once_published_and_identically_by_two_replicas(
    make_sidecar: MakeSidecar, nats_server: NatsServerProcess
) -> None:
    prompt = sentiment({"k": 3, "pool": "production"})
    first = await make_sidecar(prompts=[prompt], nats_url=nats_server.url)
    second = await make_sidecar(prompts=[prompt], nats_url=nats_server.url)

    # Before any pool exists the variant serves without demonstrations.
    await call(first, "nothing yet")
    assert [m["role"] for m in first.upstream.requests[-1].body["messages"]] == ["system", "user"]

    texts = ["warm", "cold", "kind", "cruel", "bright", "grim", "sweet", "sour"]
    records = [
        DemoRecord(
            id=f"exec-{i}",
            variables={"text": f"a {word} film {i}"},
            answer="positive" if i % 2 == 0 else "negative",
            reward=1.0 if i != 6 else 0.0,
        )
        for i, word in enumerate(texts)
    ]
    records.append(DemoRecord(id="exec-key", variables={"text": "warm"}, answer=f"use {SECRET}"))
    snapshot = DemoPoolSnapshot(prompt_id="sentiment", version=5, demos=records)
    await first.bus.kv_put(
        str(Bucket.DEMOS), demo_pool_key("sentiment", "production"), snapshot.encode()
    )

    async def served(sidecar: Any, text: str) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            await call(sidecar, text)
            sent: list[dict[str, Any]] = sidecar.upstream.requests[-1].body["messages"]
            if len(sent) > 2 or asyncio.get_running_loop().time() > deadline:
                return sent
            await asyncio.sleep(0.05)

    one = await served(first, "a warm sweet film")
    two = await served(second, "a warm sweet film")
    assert one == two and len(one) == 2 + 2 * 3
    shown = [m["content"] for m in one if m["role"] == "assistant"]
    assert {"positive", "negative"} <= {s for s in shown if SECRET not in s}
    assert all(SECRET not in m["content"] for m in one)  # redacted on arrival
    assert "Text: a sweet film 6" not in [m["content"] for m in one]  # reward 0: not a demo
    events = [
        e for e in await first.events("execution.completed") if isinstance(e, ExecutionCompleted)
    ]
    assert events[-1].demos and all(d.startswith("exec-") for d in events[-1].demos)


async def test_a_corrupt_pool_is_ignored_and_calls_go_on(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(prompts=[sentiment({"k": 2, "pool": "production"})])
    await sidecar.bus.kv_put(str(Bucket.DEMOS), "sentiment.production", b"\x00not zlib")
    await call(sidecar, "still fine")
    assert sidecar.upstream.requests[-1].body["messages"][-1]["content"] == "Text: still fine"
