"""The demonstrations a routed call is shown (see :mod:`prompts.demos`).

Pools come from two places and neither is a database:

* ``pool = "production"`` or a dataset name: the learner builds the pool and writes it to
  the KV bucket ``promptlab_demos`` (:class:`~events.snapshots.DemoPoolSnapshot`); every
  replica watches the bucket (:func:`watch_pools`) and serves the same pool. Until one
  arrives, such a variant runs without demonstrations.
* ``pool = "examples"`` (the prompt's ``[[examples]]``) and a list in the variant itself:
  built here from the prompt, the same in every replica.

A variant with ``demos.embedding_model`` ranks by embeddings: the learner publishes the
pool's rows beside it (read here with the pool, :func:`read_vectors`), and each call's
query is embedded by :class:`~sidecar.demo_embeddings.QueryEmbedder`; when that is not
possible the call retrieves by BM25, and the cause is counted and logged once.

Every demonstration goes through the redactor when its pool is built, so a key that
slipped into a prompt file or a pool never reaches a model. A published pool's BM25
index is built when the pool arrives, off the event loop; local pools are built when the
app starts and when a prompt changes (:meth:`DemoPools.prepare`), not on a user's call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import ValidationError

from promptlab.events.bus import BusError, EventBus, KVEntry
from promptlab.events.snapshots import DemoPoolSnapshot
from promptlab.events.subjects import Bucket, demo_pool_key, demo_vectors_key
from promptlab.events.watching import follow
from promptlab.prompts import PromptSpec, VariantSpec
from promptlab.prompts.demo_pool import DemoPool, pool_from_examples, query_text
from promptlab.prompts.demo_vectors import VectorsUnusable, from_chunks
from promptlab.prompts.demos import Demo, DemosSpec
from promptlab.providers import Redactor
from promptlab.sidecar.demo_embeddings import NO_VECTORS, QueryEmbedder

log = logging.getLogger(__name__)

THREAD_AT = 1 << 20
"""Numbers in a pool's embeddings (rows x length) from which a call's similarities are
computed in a worker thread, so a large pool never holds the event loop for
milliseconds (below it, about 0.3 ms: less than the thread's round trip)."""


class DemoPools:
    """Pools by prompt and pool name, and the choice of one call's demonstrations."""

    def __init__(self, redactor: Redactor, embedder: QueryEmbedder | None = None) -> None:
        self.redactor = redactor
        self.embedder = embedder
        """Embeds calls' queries for variants with an ``embedding_model`` (None: they
        retrieve by BM25, counted nowhere: a test or tool without providers)."""
        self._published: dict[str, DemoPool] = {}
        self._local: dict[tuple[str, str], DemoPool] = {}

    def published(self, prompt_id: str, pool: str = "production") -> DemoPool | None:
        """The pool the learner published for ``prompt_id`` (None: none yet)."""
        return self._published.get(demo_pool_key(prompt_id, pool))

    def apply(
        self, snapshot: DemoPoolSnapshot, vectors: Mapping[str, np.ndarray] | None = None
    ) -> DemoPool:
        """Serve ``snapshot`` (with its embeddings by model, :func:`read_vectors`) from
        now on; an older version than the one held is ignored."""
        key = demo_pool_key(snapshot.prompt_id, snapshot.pool)
        held = self._published.get(key)
        if held is not None and held.version and int(held.version) > snapshot.version:
            return held
        pool = DemoPool(
            (self._clean(d.variables, d.answer, d.reward, d.id) for d in snapshot.demos),
            version=str(snapshot.version),
            vectors=vectors,
        )
        pool.build_index()
        self._published[key] = pool
        return pool

    async def choose(
        self, prompt: PromptSpec, variant: VariantSpec, values: Mapping[str, Any]
    ) -> list[Demo]:
        """The demonstrations of one call of ``variant`` with validated ``values``."""
        spec = variant.demos
        if spec is None:
            return []
        pool = self._pool_of(prompt, variant)
        if pool is None:
            return []
        if spec.embedding_model and spec.select == "similar" and self.embedder is not None:
            chosen = await self._nearest(pool, spec, values)
            if chosen is not None:
                return chosen
        return pool.select(spec, values)

    async def _nearest(
        self, pool: DemoPool, spec: DemosSpec, values: Mapping[str, Any]
    ) -> list[Demo] | None:
        """The demonstrations by embeddings, or None (the cause counted): BM25's turn."""
        assert self.embedder is not None and spec.embedding_model is not None
        model = spec.embedding_model
        if model not in pool.vectors:
            self.embedder.fallback(model, NO_VECTORS)
            return None
        query = await self.embedder.embed(model, query_text(values))
        if query is None:
            return None
        try:
            if pool.vectors[model].size < THREAD_AT:
                return pool.nearest(spec, query)
            # Reading millions of numbers takes milliseconds; NumPy releases the GIL.
            return await asyncio.to_thread(pool.nearest, spec, query)
        except ValueError as exc:  # rows of another length: the model changed meanwhile
            self.embedder.fallback(model, "dimension_mismatch", str(exc))
            return None

    def prepare(self, prompt: PromptSpec) -> None:
        """Build the local pools (and indexes) of ``prompt``'s demonstration variants now,
        so that no user's call builds one: at start and whenever the prompt changes."""
        for variant in prompt.variants:
            if variant.demos is not None:
                try:
                    self._pool_of(prompt, variant)
                except Exception as exc:  # a pool that cannot be built must not stop a change
                    log.warning(
                        "demonstrations of %s/%s not prepared: %s", prompt.id, variant.name, exc
                    )

    def _pool_of(self, prompt: PromptSpec, variant: VariantSpec) -> DemoPool | None:
        spec = variant.demos
        assert spec is not None
        if isinstance(spec.pool, str) and spec.pool != "examples":
            return self._published.get(demo_pool_key(prompt.id, spec.pool))
        key = (prompt.id, variant.version)
        pool = self._local.get(key)
        if pool is None:
            if isinstance(spec.pool, str):
                demos = pool_from_examples(prompt.examples)
            else:
                demos = [Demo.build(d.variables, d.answer) for d in spec.pool]
            pool = DemoPool(self._clean(d.variables, d.answer, d.reward, d.id) for d in demos)
            pool.build_index()  # a handful of examples: microseconds once bm25s is loaded
            self._local[key] = pool
        return pool

    def _clean(self, variables: Mapping[str, Any], answer: str, reward: float, id: str) -> Demo:
        redact = self.redactor.redact
        kept = {k: redact(v) if isinstance(v, str) else v for k, v in variables.items()}
        return Demo.build(kept, redact(answer), reward=reward, id=id)


async def watch_pools(bus: EventBus, pools: DemoPools) -> None:
    """Serve every pool the learner writes; keep the last one if NATS goes away."""

    async def apply(entry: KVEntry) -> None:
        try:
            snapshot = DemoPoolSnapshot.decode(entry.value or b"")
        except (ValidationError, ValueError) as exc:
            log.warning("ignoring a demonstration pool for %s: %s", entry.key, exc)
            return
        vectors = await read_vectors(bus, snapshot)
        # Building the index of a large pool takes a while: not on the event loop.
        await asyncio.to_thread(pools.apply, snapshot, vectors)

    await follow(bus, str(Bucket.DEMOS), apply, what="demonstration pool watch", logger=log)


async def read_vectors(bus: EventBus, snapshot: DemoPoolSnapshot) -> dict[str, np.ndarray]:
    """The embeddings ``snapshot`` names, by model, read from ``promptlab_demo_vectors``.

    A model whose chunks are missing or damaged (a pool read so late that the learner
    has deleted its chunks: two rebuilds later) is left out with a warning; its
    variants retrieve by BM25 until the next pool, written after its chunks, arrives.
    """
    vectors = {}
    for meta in snapshot.vectors:
        keys = [
            demo_vectors_key(snapshot.prompt_id, snapshot.pool, meta.model, meta.sha256, i)
            for i in range(meta.chunks)
        ]
        try:
            entries = [await bus.kv_get(str(Bucket.DEMO_VECTORS), key) for key in keys]
            chunks = [e.value or b"" for e in entries if e is not None]
            vectors[meta.model] = await asyncio.to_thread(from_chunks, chunks, meta)
        except (BusError, VectorsUnusable) as exc:
            log.warning(
                "demonstration pool %s.%s served without embeddings by %s: %s",
                snapshot.prompt_id, snapshot.pool, meta.model, exc,
            )  # fmt: skip
    return vectors
