"""Demonstration pools from production, and the automatic demonstration challenger.

A variant whose ``demos.pool`` names a dataset (``promptlab dataset create``) gets that
dataset's cases with an expected answer, published the same way under
``<prompt>.<dataset>``.

For every prompt that needs one (a variant with ``demos.pool = "production"``, or
``[learning] demos``), every ``learner.demos_interval_s`` the active learner reads the
good production examples (reward at least the lowest ``min_reward`` asked for,
corrections included; :func:`learner.examples.read_examples`), newest first, and
writes them as a :class:`~events.snapshots.DemoPoolSnapshot` to the KV bucket
``promptlab_demos`` when they changed. Every sidecar replica serves that pool; none
reads the database on a call.

With ``[learning] demos = { k, select, min_reward, min_pool, embedding_model }``, once
the pool holds ``min_pool`` good answers the learner registers ``<champion>+demos``: the
champion's model, params and templates with ``demos = { pool = "production", ... }``, a
``VariantRegistered`` with ``origin = "demos"`` and the champion as parent, stored in
the variants bucket like any run-time variant. From then on it is one more challenger:
the same-period test decides whether it is promoted, probation whether it stays.

A pool whose variants retrieve by embeddings (``demos.embedding_model``) is published
with them (:mod:`learner.demo_vector_writer`): the learner embeds every demonstration
and writes the rows beside the pool; when embedding fails, the pool goes out without
them (BM25 still serves it) and embedding is tried again a minute later.

The pool's content comes from the event log (the examples table is a projection), so
what it holds at a stream position is the same in a replay; only when it is written
follows the clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

from promptlab.events.bus import EventBus
from promptlab.events.models import VariantRegistered, encode
from promptlab.events.snapshots import DemoPoolSnapshot, DemoRecord
from promptlab.events.subjects import Bucket, demo_pool_key, variant_key
from promptlab.lab.datasets import (
    DEFAULT_DATASETS_DIR,
    DatasetError,
    dataset_demos,
    read_dataset,
)
from promptlab.learner.demo_embeddings import PoolEmbedder
from promptlab.learner.demo_vector_writer import PoolVectorWriter
from promptlab.learner.examples import Example, read_examples
from promptlab.learner.periodic import every
from promptlab.learner.storage.store import Store
from promptlab.learner.storage.view import PromptView
from promptlab.prompts.spec import PromptSpec, VariantSpec

log = logging.getLogger(__name__)

DEMOS_SUFFIX = "+demos"
"""The automatic challenger is called ``<champion>+demos``."""
MAX_POOL = 20_000
"""Most demonstrations one published pool holds (the newest)."""
_VECTORS_ROOM = 4096
"""Bytes a pool leaves for the description of its embeddings (a few hundred per model)."""


def needs_pool(spec: PromptSpec) -> float | None:
    """The lowest ``min_reward`` a production pool of ``spec`` must serve (None: no pool)."""
    wanted = [
        v.demos.min_reward
        for v in spec.variants
        if v.demos is not None and v.demos.pool == "production"
    ]
    if spec.learning.demos is not None:
        wanted.append(spec.learning.demos.min_reward)
    return min(wanted) if wanted else None


def pool_snapshot(prompt_id: str, examples: Iterable[Example], version: int) -> DemoPoolSnapshot:
    """The pool of ``examples`` (newest first), cut to :data:`MAX_POOL` and to what fits
    in :attr:`DemoPoolSnapshot.MAX_ENCODED_BYTES` (the oldest go first)."""
    records = [
        DemoRecord(
            id=e.id,
            variables=e.variables,
            answer=e.answer,
            reward=0.0 if e.reward is None else e.reward,  # unrated: not a good answer
        )
        for e in examples
        if e.answer
    ]
    return _fitted(prompt_id, "production", records, version)


def dataset_snapshot(
    prompt_id: str, name: str, rows: Iterable[Mapping[str, Any]], version: int
) -> DemoPoolSnapshot:
    """The pool of a dataset's demonstrations (:func:`lab.datasets.dataset_demos`: the
    rule the lab uses offline too), in order."""
    records = [
        DemoRecord(id=d.id, variables=dict(d.variables), answer=d.answer, reward=d.reward)
        for d in dataset_demos(name, rows)
    ]
    return _fitted(prompt_id, name, records, version)


def _fitted(prompt_id: str, pool: str, records: list[DemoRecord], version: int) -> DemoPoolSnapshot:
    records = records[:MAX_POOL]
    snapshot = DemoPoolSnapshot(prompt_id=prompt_id, pool=pool, version=version, demos=records)
    limit = DemoPoolSnapshot.MAX_ENCODED_BYTES - _VECTORS_ROOM
    while records and len(snapshot.encode()) > limit:
        records = records[: len(records) * 3 // 4]
        snapshot = DemoPoolSnapshot(prompt_id=prompt_id, pool=pool, version=version, demos=records)
    return snapshot


def embedding_models(spec: PromptSpec, pool: str) -> list[str]:
    """The embedding models ``spec``'s variants retrieve from pool ``pool`` with (sorted)."""
    models = {
        v.demos.embedding_model
        for v in spec.variants
        if v.demos is not None and v.demos.pool == pool and v.demos.embedding_model
    }
    auto = spec.learning.demos
    if pool == "production" and auto is not None and auto.embedding_model:
        models.add(auto.embedding_model)
    return sorted(m for m in models if m)


def dataset_pools(spec: PromptSpec) -> set[str]:
    """Dataset names ``spec``'s variants draw demonstrations from."""
    return {
        v.demos.pool
        for v in spec.variants
        if v.demos is not None
        and isinstance(v.demos.pool, str)
        and v.demos.pool not in ("production", "examples")
    }


def demos_challenger(spec: PromptSpec, champion: VariantSpec) -> VariantSpec | None:
    """``<champion>+demos`` for ``spec`` (None without ``[learning] demos``)."""
    auto = spec.learning.demos
    if auto is None:
        return None
    return champion.model_copy(
        update={
            "name": f"{champion.name}{DEMOS_SUFFIX}"[:64],
            "champion": False,
            "status": "active",
            "origin": "demos",
            "parent": champion.name,
            "parents": (champion.name,),
            "strategy": "demos",
            "demos": auto.variant_demos(),
        }
    )


@dataclass
class DemoPoolWriter:
    """Publishes production pools and registers demonstration challengers."""

    bus: EventBus
    store: Store
    prompts: Callable[[], Iterable[PromptSpec]]
    """The prompts the learner knows (files and run-time definitions)."""
    view: Callable[[str], Awaitable[PromptView | None]]
    """A prompt's state: its current champion (the learner's, not the file's) and its
    registered variants."""
    interval_s: float = 5.0
    datasets_dir: Path = DEFAULT_DATASETS_DIR
    """Where ``pool = "<dataset>"`` is read (``promptlab dataset create`` writes there)."""
    embedder: InitVar[PoolEmbedder | None] = None
    """Embeds pools whose variants retrieve by embeddings (None: such pools are
    published without embeddings, and their variants retrieve by BM25)."""
    _clock: Callable[[], float] = time.monotonic
    _written: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    """Per pool key: the digest of what was written and the models embedded with it."""
    vectors: PoolVectorWriter = field(init=False)
    """Embeds pools and writes their rows (its ``embedder`` may be attached later)."""
    registered: list[VariantRegistered] = field(default_factory=list)
    """Challengers this writer registered (for logs and tests)."""

    def __post_init__(self, embedder: PoolEmbedder | None) -> None:
        self.vectors = PoolVectorWriter(self.bus, embedder)

    async def run(
        self,
        stopping: asyncio.Event,
        *,
        active: Callable[[], bool],
        sequence: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Refresh every ``interval_s`` while ``active()``, until ``stopping`` is set."""
        await every(
            self.interval_s,
            stopping,
            lambda: self.refresh(sequence()),
            active=active,
            what="demonstration pools",
            logger=log,
            clock=clock,
        )

    async def refresh(self, sequence: int) -> None:
        """Write the pools that changed; register the challengers now due."""
        for spec in list(self.prompts()):
            for name in sorted(dataset_pools(spec)):
                try:
                    rows = await asyncio.to_thread(read_dataset, self.datasets_dir, name)
                except DatasetError as exc:
                    log.warning("prompt %s: no demonstration pool from a dataset: %s", spec.id, exc)
                    continue
                snapshot = dataset_snapshot(spec.id, name, rows, sequence)
                await self._write(snapshot, embedding_models(spec, name))
            min_reward = needs_pool(spec)
            if min_reward is None:
                continue
            good = await read_examples(self.store, spec.id, min_reward=min_reward, limit=MAX_POOL)
            snapshot = pool_snapshot(spec.id, good, sequence)
            await self._write(snapshot, embedding_models(spec, "production"))
            await self._maybe_register(spec, good)

    async def _write(self, snapshot: DemoPoolSnapshot, models: list[str]) -> None:
        """Write ``snapshot`` (with the embeddings ``models`` make of it) unless the bucket
        already holds the same demonstrations with the same embeddings."""
        key = demo_pool_key(snapshot.prompt_id, snapshot.pool)
        digest = _digest(snapshot)
        written = self._written.get(key)
        if written is not None and written[0] == digest:
            if written[1] == frozenset(models) or not self.vectors.due(key, self._clock()):
                return  # the same pool; embeddings that failed are tried again later
        vectors = await self.vectors.publish(snapshot, models, self._clock())
        snapshot = snapshot.model_copy(update={"vectors": vectors})
        await self.bus.kv_put(str(Bucket.DEMOS), key, snapshot.encode())
        self._written[key] = (digest, frozenset(v.model for v in vectors))

    async def _maybe_register(self, spec: PromptSpec, good: list[Example]) -> None:
        auto = spec.learning.demos
        if auto is None:
            return
        eligible = sum(1 for e in good if (e.reward or 0.0) >= auto.min_reward)
        if eligible < auto.min_pool:
            return
        view = await self.view(spec.id)
        name = view.champion if view is not None else spec.champion.name
        if name.endswith(DEMOS_SUFFIX):
            return  # the demonstration challenger already won
        try:
            champion = spec.variant(name)
        except KeyError:
            champion = spec.champion
        challenger = demos_challenger(spec, champion)
        if challenger is None or (view is not None and challenger.name in view.arms):
            return
        if any(e.variant == challenger.name for e in self.registered):
            return  # registered, not yet projected
        variables = [v.model_dump(mode="json", exclude_defaults=True) for v in spec.variables]
        event = challenger.to_event(spec.id, variables)
        await self.bus.publish(event)
        await self.bus.kv_put(
            str(Bucket.VARIANTS), variant_key(spec.id, challenger.name), encode(event)
        )
        self.registered.append(event)
        log.info(
            "registered %s for prompt %s: its pool holds %d good answers",
            challenger.name, spec.id, eligible,
        )  # fmt: skip


def _digest(snapshot: DemoPoolSnapshot) -> str:
    content = "\n".join(f"{d.id}\t{d.reward}\t{d.answer}" for d in snapshot.demos)
    return hashlib.sha256(content.encode()).hexdigest()
