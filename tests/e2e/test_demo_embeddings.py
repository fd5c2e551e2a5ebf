"""End to end: demonstrations retrieved by embeddings, and BM25 when embeddings fail.

Sidecar + learner + a real nats-server + SQLite + the fake upstream over HTTP, whose
``/v1/embeddings`` knows synonyms (``fake_embedding``). Calls are captured and rated
thumbs-up, so they become the production pool; the learner embeds it through the fake
and publishes the rows beside it; the sidecar embeds each call's query.

The pool is built so that meaning and shared words disagree: "an awful film" shares
no word with "a dreadful picture" (the same meaning) and two with "an awful lot of rain".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from fake_upstream import EMBEDDING_DIM, FakeUpstream
from polling import until

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.models import ExecutionCompleted
from promptlab.events.publisher import EventPublisher
from promptlab.events.snapshots import DemoPoolSnapshot
from promptlab.events.subjects import Bucket, demo_pool_key
from promptlab.learner.config import LearnerSettings, StorageSettings
from promptlab.learner.service import Learner
from promptlab.prompts import PromptSpec
from promptlab.prompts.demo_pool import DemoPool
from promptlab.providers import Providers, ProviderSettings
from promptlab.sidecar import keys
from promptlab.sidecar.app import create_app
from promptlab.sidecar.config import ServerSettings, TelemetrySettings, default_providers
from promptlab.sidecar.ports import SidecarConfig

PROMPT_ID = "topic"
EMBEDDER = "fake/embed-1"
POOL = {
    "a dreadful picture": "film-review",
    "an awful lot of rain": "weather",
    "fresh bread every morning": "baking",
    "the handset battery died": "gadget",
}
QUERY = "an awful film"
NEAR_BY_MEANING, NEAR_BY_WORDS = "a dreadful picture", "an awful lot of rain"


def prompt() -> PromptSpec:
    return PromptSpec.model_validate(
        {
            "id": PROMPT_ID,
            "variables": [{"name": "text", "type": "string", "required": True}],
            "reward": {"feedback": "thumbs_up"},
            "routing": {"strategy": "fixed", "weights": {"base": 0.0, "near": 1.0}},
            "learning": {"capture": True},
            "variants": [
                {"name": "base", "model": "fake/m", "template": "Topic: {{ text }}",
                 "champion": True},
                {"name": "near", "model": "fake/m", "template": "Topic: {{ text }}",
                 "demos": {"k": 1, "pool": "production", "embedding_model": EMBEDDER}},
            ],
        }
    )  # fmt: skip


def topic_of(body: dict[str, Any]) -> str:
    """The fake model's answer: the pool text's topic (the call's own text is last)."""
    text = str(body["messages"][-1]["content"]).removeprefix("Topic: ")
    return POOL.get(text, "unknown")


@dataclass
class Stack:
    base_url: str
    app: web.Application
    bus: JetStreamBus
    learner: Learner
    publisher: EventPublisher
    upstream: FakeUpstream

    async def call(self, text: str) -> str:
        """One routed call; its execution id."""
        async with openai.AsyncOpenAI(base_url=self.base_url, api_key="x", max_retries=0) as c:
            completion = await c.chat.completions.create(
                model=f"promptlab/{PROMPT_ID}",
                messages=[],
                extra_body={"promptlab": {"variables": {"text": text}}},
            )
            return completion.id

    async def rate(self, execution_id: str) -> None:
        async with aiohttp.ClientSession() as http:
            body = {"execution_id": execution_id, "name": "thumbs_up", "value": True}
            async with http.post(self.base_url + "/feedback", json=body) as resp:
                assert resp.status < 300, await resp.text()

    def served_pool(self) -> DemoPool | None:
        return self.app[keys.PROXY].demos.published(PROMPT_ID)

    async def published(self) -> DemoPoolSnapshot | None:
        entry = await self.bus.kv_get(str(Bucket.DEMOS), demo_pool_key(PROMPT_ID, "production"))
        return DemoPoolSnapshot.decode(entry.value) if entry and entry.value else None

    async def fill_pool(self) -> dict[str, str]:
        """Each pool text called and rated thumbs-up; text -> execution id."""
        ids = {}
        for text in POOL:
            ids[text] = await self.call(text)
            await self.rate(ids[text])
        await self.publisher.flush(10.0)
        return ids

    def shown(self) -> list[str]:
        """The demonstration user turns of the upstream's last chat request."""
        chat = [r for r in self.upstream.requests if r.path.endswith("/chat/completions")]
        messages = chat[-1].body["messages"][:-1]
        return [m["content"].removeprefix("Topic: ") for m in messages if m["role"] == "user"]

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as http:
            async with http.get(self.base_url.removesuffix("/v1") + "/metrics") as resp:
                return await resp.text()


def served_with_embeddings(stack: Stack, size: int) -> bool:
    """Whether the sidecar serves a pool of ``size`` with a row for each demonstration."""
    pool = stack.served_pool()
    return pool is not None and len(pool) == size and len(pool.vectors.get(EMBEDDER, ())) == size


@pytest.fixture
async def stack(tmp_path: Path, nats_server: NatsServerProcess) -> AsyncIterator[Stack]:
    upstream = FakeUpstream(reply=topic_of)
    await upstream.start()
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    publisher = EventPublisher(bus, tmp_path / "outbox")
    fake = ProviderSettings(kind="openai", api_base=upstream.base_url, max_retries=0)
    settings = SidecarConfig(
        server=ServerSettings(demo_embedding_timeout_s=0.3),
        providers={**default_providers(), "fake": fake},
        telemetry=TelemetrySettings(),
    )
    prompts = {PROMPT_ID: prompt()}
    app = create_app(settings, prompts=prompts, publisher=publisher, bus=bus, router_seed=5)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    learner = Learner(
        LearnerSettings(snapshot_interval_ms=50, seed=3, demos_interval_s=0.1),
        StorageSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}"),
        bus,
        prompts,
    )
    async with Providers({"fake": fake}) as client:
        learner.attach_embedder(client)
        learner.demo_pools.vectors.retry_s = 0.2
        async with learner:
            base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
            yield Stack(base_url, app, bus, learner, publisher, upstream)
    await runner.cleanup()
    await bus.close()
    await upstream.stop()


async def test_the_nearest_by_meaning_is_shown_where_bm25_shows_shared_words(
    stack: Stack,
) -> None:
    ids = await stack.fill_pool()
    await until(lambda: served_with_embeddings(stack, 4), what="the pool of 4 served")
    snapshot = await stack.published()
    assert snapshot is not None
    [vectors] = snapshot.vectors
    assert (vectors.model, vectors.count, vectors.dim) == (EMBEDDER, 4, EMBEDDING_DIM)

    execution = await stack.call(QUERY)
    assert stack.shown() == [NEAR_BY_MEANING]
    await stack.publisher.flush(10.0)
    [event] = [
        e async for _, e, _ in stack.bus.read(1)
        if isinstance(e, ExecutionCompleted) and e.execution_id == execution
    ]  # fmt: skip
    assert event.demos == [ids[NEAR_BY_MEANING]]

    # The same served pool, by BM25: the example that shares words.
    pool = stack.served_pool()
    assert pool is not None
    bm25 = prompt().variant("near").demos
    assert bm25 is not None
    by_words = pool.select(bm25.model_copy(update={"embedding_model": None}), {"text": QUERY})
    assert [d.variables["text"] for d in by_words] == [NEAR_BY_WORDS]
    assert "promptlab_demo_fallbacks_total{" not in await stack.metrics()


async def test_a_growing_pool_embeds_only_its_new_examples(stack: Stack) -> None:
    await stack.fill_pool()
    await until(lambda: served_with_embeddings(stack, 4), what="the pool of 4 served")
    embedder = stack.learner.demo_pools.vectors.embedder
    assert embedder is not None and embedder.embedded == 4
    await stack.rate(await stack.call("a superb movie"))
    await until(lambda: served_with_embeddings(stack, 5), what="the grown pool served")
    assert embedder.embedded == 5


async def test_an_embeddings_outage_at_call_time_falls_back_to_bm25_and_is_counted(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    await stack.fill_pool()
    await until(lambda: served_with_embeddings(stack, 4), what="the pool of 4 served")
    stack.upstream.embedding_status = 503
    with caplog.at_level(logging.WARNING, logger="promptlab.sidecar.demo_embeddings"):
        await stack.call(QUERY)
        assert stack.shown() == [NEAR_BY_WORDS]  # BM25's choice; the call succeeded
        await stack.call(QUERY + " again")
    warned = [r for r in caplog.records if r.name == "promptlab.sidecar.demo_embeddings"]
    assert len(warned) == 1 and "upstream_5xx" in warned[0].getMessage()
    assert 'promptlab_demo_fallbacks_total{cause="upstream_5xx"} 2.0' in await stack.metrics()

    stack.upstream.embedding_status = 200
    stack.upstream.embedding_delay_s = 1.0  # past demo_embedding_timeout_s = 0.3
    await stack.call("an awful film, slowly")
    assert stack.shown() == [NEAR_BY_WORDS]
    assert 'promptlab_demo_fallbacks_total{cause="timeout"} 1.0' in await stack.metrics()


async def test_a_pool_the_learner_cannot_embed_is_published_without_and_served_by_bm25(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.upstream.embedding_status = 500
    with caplog.at_level(logging.WARNING, logger="promptlab.learner.demo_vector_writer"):
        await stack.fill_pool()
        await until(
            lambda: (p := stack.served_pool()) is not None and len(p) == 4,
            what="the pool of 4 served",
        )
        await stack.call(QUERY)
        await stack.call(QUERY)
    assert stack.shown() == [NEAR_BY_WORDS]
    snapshot = await stack.published()
    assert snapshot is not None and snapshot.vectors == []
    warned = [r for r in caplog.records if r.name == "promptlab.learner.demo_vector_writer"]
    assert len(warned) == 1 and "without embeddings by fake/embed-1" in warned[0].getMessage()
    metrics = await stack.metrics()
    assert 'promptlab_demo_fallbacks_total{cause="pool_without_vectors"} 2.0' in metrics

    stack.upstream.embedding_status = 200  # back: the next rebuild adds the embeddings
    await until(lambda: served_with_embeddings(stack, 4), what="the embeddings, once back")
    await stack.call(QUERY)
    assert stack.shown() == [NEAR_BY_MEANING]
