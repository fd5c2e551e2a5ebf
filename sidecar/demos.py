"""The demonstrations a routed call is shown (see :mod:`prompts.demos`).

Pools come from two places and neither is a database:

* ``pool = "production"`` or a dataset name: the learner builds the pool and writes it to
  the KV bucket ``promptlab_demos`` (:class:`~events.snapshots.DemoPoolSnapshot`); every
  replica watches the bucket (:func:`watch_pools`) and serves the same pool. Until one
  arrives, such a variant runs without demonstrations.
* ``pool = "examples"`` (the prompt's ``[[examples]]``) and a list in the variant itself:
  built here from the prompt, the same in every replica.

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

from pydantic import ValidationError

from promptlab.events.bus import EventBus, KVEntry
from promptlab.events.snapshots import DemoPoolSnapshot
from promptlab.events.subjects import Bucket, demo_pool_key
from promptlab.events.watching import follow
from promptlab.prompts import PromptSpec, VariantSpec
from promptlab.prompts.demo_pool import DemoPool, pool_from_examples
from promptlab.prompts.demos import Demo
from promptlab.providers import Redactor

log = logging.getLogger(__name__)


class DemoPools:
    """Pools by prompt and pool name, and the choice of one call's demonstrations."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._published: dict[str, DemoPool] = {}
        self._local: dict[tuple[str, str], DemoPool] = {}

    def published(self, prompt_id: str, pool: str = "production") -> DemoPool | None:
        """The pool the learner published for ``prompt_id`` (None: none yet)."""
        return self._published.get(demo_pool_key(prompt_id, pool))

    def apply(self, snapshot: DemoPoolSnapshot) -> DemoPool:
        """Serve ``snapshot`` from now on (an older version than the one held is ignored)."""
        key = demo_pool_key(snapshot.prompt_id, snapshot.pool)
        held = self._published.get(key)
        if held is not None and held.version and int(held.version) > snapshot.version:
            return held
        pool = DemoPool(
            (self._clean(d.variables, d.answer, d.reward, d.id) for d in snapshot.demos),
            version=str(snapshot.version),
        )
        pool.build_index()
        self._published[key] = pool
        return pool

    def choose(
        self, prompt: PromptSpec, variant: VariantSpec, values: Mapping[str, Any]
    ) -> list[Demo]:
        """The demonstrations of one call of ``variant`` with validated ``values``."""
        spec = variant.demos
        if spec is None:
            return []
        pool = self._pool_of(prompt, variant)
        return pool.select(spec, values) if pool is not None else []

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
        # Building the index of a large pool takes a while: not on the event loop.
        await asyncio.to_thread(pools.apply, snapshot)

    await follow(bus, str(Bucket.DEMOS), apply, what="demonstration pool watch", logger=log)
