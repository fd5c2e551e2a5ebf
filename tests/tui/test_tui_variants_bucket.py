"""Templates come from the variants bucket too, however old the variant's registration."""

from __future__ import annotations

import asyncio

from promptlab.events import Bucket, VariantRegistered, encode
from promptlab.events.memory import MemoryBus
from promptlab.tui.feed import Feed
from promptlab.tui.state import LabState
from promptlab.tui.views import template_text


async def test_template_of_a_variant_known_only_from_the_bucket() -> None:
    bus = MemoryBus()
    event = VariantRegistered(
        prompt_id="faq",
        variant="old-v1",
        version="abc",
        model="simulated/m",
        system="Be brief.",
        template="Answer: {{ q }}",
    )
    await bus.kv_put(str(Bucket.VARIANTS), "faq.old-v1", encode(event))
    state = LabState()
    feed = Feed(bus, state, history_events=0, poll_s=0.05)
    await feed.start()
    try:
        for _ in range(100):
            if "old-v1" in state.prompt("faq").templates:
                break
            await asyncio.sleep(0.02)
    finally:
        await feed.stop()
    text = template_text(state.prompts["faq"], "old-v1").plain
    assert "Answer: {{ q }}" in text and "Be brief." in text
    assert state.events_seen == 0  # bucket entries are not counted as stream events
