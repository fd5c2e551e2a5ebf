"""Publishing a demonstration pool's embeddings beside the pool.

For each embedding model a pool's variants name, :class:`PoolVectorWriter` embeds the
pool's demonstrations (:class:`~learner.demo_embeddings.PoolEmbedder`), writes the rows
to bucket ``promptlab_demo_vectors`` in chunks (:mod:`prompts.demo_vectors`), and
returns their :class:`~events.snapshots.PoolVectors` for the pool's snapshot, which is
written after them: a sidecar that reads the snapshot finds its chunks in place.

Embedding is never what stops a pool: whatever fails (the provider, the bus), the pool
is published without that model's rows, one warning says why (again only when the
cause changes), and the next rebuild after :data:`RETRY_S` tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from promptlab.events.bus import EventBus
from promptlab.events.snapshots import DemoPoolSnapshot, PoolVectors
from promptlab.events.subjects import (
    Bucket,
    demo_pool_key,
    demo_vectors_key,
    demo_vectors_prefix,
)
from promptlab.learner.demo_embeddings import PoolEmbedder
from promptlab.learner.errors import LearnerError
from promptlab.prompts.demo_vectors import to_chunks
from promptlab.prompts.demos import Demo

log = logging.getLogger(__name__)

RETRY_S = 60.0
"""After a failed embedding, how long an unchanged pool waits before it is tried again."""


class NoEmbedder(LearnerError):
    """The learner was started without a provider client to embed with."""


class PoolVectorWriter:
    """Embeds pools and writes their rows; remembers what it wrote and what failed."""

    def __init__(
        self, bus: EventBus, embedder: PoolEmbedder | None, *, retry_s: float = RETRY_S
    ) -> None:
        self.bus = bus
        self.embedder = embedder
        self.retry_s = retry_s
        """After a failure, how long an unchanged pool waits before it is embedded again."""
        self._written: dict[tuple[str, str], list[tuple[str, int]]] = {}
        """(pool key, model) -> the sets of rows in the bucket, ``(sha256, chunks)``,
        oldest first: the last is the newest pool's, the one before may still be read."""
        self._failed_at: dict[str, float] = {}
        self._said: dict[tuple[str, str], str] = {}
        """(pool key, model) -> the cause last logged."""

    def due(self, key: str, now: float) -> bool:
        """Whether pool ``key``'s failed embeddings may be tried again at ``now``."""
        failed = self._failed_at.get(key)
        return failed is None or now - failed >= self.retry_s

    async def publish(
        self, snapshot: DemoPoolSnapshot, models: list[str], now: float
    ) -> list[PoolVectors]:
        """Embed and write ``snapshot``'s rows for each of ``models``; the rows written."""
        key = demo_pool_key(snapshot.prompt_id, snapshot.pool)
        self._failed_at.pop(key, None)
        texts = [Demo.build(d.variables, d.answer, id=d.id).text() for d in snapshot.demos]
        written = []
        for model in models:
            try:
                written.append(await self._publish_one(snapshot, model, texts))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: the pool goes out without these rows
                self._failed_at[key] = now
                self._warn(key, model, exc)
            else:
                if self._said.pop((key, model), None) is not None:
                    log.info("demonstration pool %s: embeddings by %s published again", key, model)
        return written

    async def _publish_one(
        self, snapshot: DemoPoolSnapshot, model: str, texts: list[str]
    ) -> PoolVectors:
        if self.embedder is None:
            raise NoEmbedder("this learner has no provider client to embed with")
        rows = await self.embedder.rows(model, texts)
        chunks, sha = to_chunks(rows)
        key = (demo_pool_key(snapshot.prompt_id, snapshot.pool), model)
        if key not in self._written:
            self._written[key] = await self._left_over(snapshot, model)
        generations = self._written[key]
        if not generations or generations[-1][0] != sha[:16]:
            for i, chunk in enumerate(chunks):
                chunk_key = demo_vectors_key(snapshot.prompt_id, snapshot.pool, model, sha, i)
                await self.bus.kv_put(str(Bucket.DEMO_VECTORS), chunk_key, chunk)
            generations.append((sha[:16], len(chunks)))
            # Two sets stay: the pool now being replaced may still be read by a replica.
            while len(generations) > 2:
                old, count = generations.pop(0)
                await self._delete(snapshot, model, old, count)
        return PoolVectors(
            model=model, dim=rows.shape[1], count=rows.shape[0], chunks=len(chunks), sha256=sha
        )

    async def _left_over(self, snapshot: DemoPoolSnapshot, model: str) -> list[tuple[str, int]]:
        """The sets of rows of this pool and model already in the bucket (an earlier
        learner's), oldest first: the one the published pool names is taken as the
        newest, so it stays while replicas may read it."""
        prefix = demo_vectors_prefix(snapshot.prompt_id, snapshot.pool, model)
        counts: dict[str, int] = {}
        for name in await self.bus.kv_keys(str(Bucket.DEMO_VECTORS)):
            if name.startswith(prefix):
                sha = name[len(prefix) :].partition(".")[0]
                counts[sha] = counts.get(sha, 0) + 1
        live = None
        entry = await self.bus.kv_get(
            str(Bucket.DEMOS), demo_pool_key(snapshot.prompt_id, snapshot.pool)
        )
        if entry is not None and entry.value:
            with contextlib.suppress(ValueError):
                published = DemoPoolSnapshot.decode(entry.value).vectors
                live = next((v.sha256[:16] for v in published if v.model == model), None)
        return sorted(counts.items(), key=lambda item: item[0] == live)

    async def _delete(self, snapshot: DemoPoolSnapshot, model: str, sha: str, count: int) -> None:
        for i in range(count):
            chunk_key = demo_vectors_key(snapshot.prompt_id, snapshot.pool, model, sha, i)
            await self.bus.kv_delete(str(Bucket.DEMO_VECTORS), chunk_key)

    def _warn(self, key: str, model: str, exc: Exception) -> None:
        cause = f"{type(exc).__name__}: {str(exc)[:300]}"
        if self._said.get((key, model)) == cause:
            return
        self._said[(key, model)] = cause
        log.warning(
            "demonstration pool %s published without embeddings by %s (its variants retrieve "
            "by BM25 until they are back; retried in %.0f s): %s",
            key, model, self.retry_s, cause,
        )  # fmt: skip
