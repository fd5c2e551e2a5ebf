"""``kind = "anthropic"`` goes through litellm to an Anthropic-Messages-shaped fake
upstream: plain and streamed, tokens and cost recorded, the key sent only to it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from anthropic_fake import MODEL, AnthropicFake
from provider_kit import BODY, KEY, MakeProviders, make_providers, raw_upstream

from promptlab.providers import ProviderSettings


@pytest.fixture
async def anthropic() -> AsyncIterator[AnthropicFake]:
    fake = AnthropicFake()
    await fake.start()
    yield fake
    await fake.stop()


def anthropic_settings(fake: AnthropicFake) -> ProviderSettings:
    return ProviderSettings(
        kind="anthropic", api_base=fake.base_url, api_key_env="PROMPTLAB_TEST_PROVIDER_KEY"
    )


async def test_a_plain_call_through_litellm(
    anthropic: AnthropicFake, make_providers: MakeProviders
) -> None:
    p = await make_providers(claude=anthropic_settings(anthropic))
    answer = await p.complete(f"claude/{MODEL}", {**BODY, "max_tokens": 50})
    assert answer.data["choices"][0]["message"]["content"] == "claude says: hi"
    assert (answer.prompt_tokens, answer.completion_tokens) == (12, 5)
    assert answer.cost_usd is not None and answer.cost_usd > 0
    assert answer.model == f"claude/{MODEL}"
    [(path, headers, body)] = anthropic.requests
    assert path.endswith("/v1/messages") and body["model"] == MODEL
    assert headers.get("x-api-key") == KEY


async def test_a_streamed_call_through_litellm(
    anthropic: AnthropicFake, make_providers: MakeProviders
) -> None:
    p = await make_providers(claude=anthropic_settings(anthropic))
    stream = await p.stream(
        f"claude/{MODEL}",
        {**BODY, "max_tokens": 50, "stream_options": {"include_usage": True}},
    )
    payloads = [payload async for payload in stream]
    assert payloads[-1] == b"[DONE]"
    chunks = [json.loads(x) for x in payloads[:-1]]
    text = "".join(
        (c["choices"][0].get("delta") or {}).get("content") or ""
        for c in chunks
        if c.get("choices")
    )
    assert text.strip() == "claude says: hi"
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert usage and usage[-1]["prompt_tokens"] == 12 and usage[-1]["completion_tokens"] == 5
