"""The continuous learner: consume, project, decide, publish snapshots.

``async with Learner(settings.learner, settings.storage, bus, prompts) as learner:``
starts it in-process (a background task); leaving the block stops it gracefully.
``promptlab serve`` and the end-to-end tests run it that way.

One loop iteration:

1. fetch up to ``batch_size`` deliveries from the durable pull consumer;
2. apply them in one transaction with the new position (:class:`Projection`);
3. publish dead letters, then ack every delivery (only after the commit);
4. publish command answers from the outbox;
5. run the policy on the prompts the batch touched; a decision is written to the
   outbox, published with a deterministic id, and applied to the prompt state only
   when it comes back through the stream (:mod:`learner.publishing`);
6. write routing and stats snapshots of changed prompts (throttled per prompt).

Beside the loop, on its own task and slower cadence, the analytics snapshots of prompts
with new traffic are written for the TUI (:mod:`learner.snapshots.analytics`).

A NATS outage only delays things: fetch errors are retried with backoff, and anything
not yet published stays in the outbox table until it is. A database outage only delays
things too: database errors become :class:`~learner.errors.StoreUnavailable` and the
whole batch is applied again with backoff (nothing is acked, nothing dead-lettered;
:mod:`learner.applying`).

Only one learner is active per store (:mod:`learner.lease`): :meth:`Learner.start`
takes the lease or leaves the learner on standby, and :meth:`Learner.run` waits for the
lease before it consumes anything (so a standby takes over when the active one dies).

Why one module of this size: the consuming loop, its lease, its outbox and its
snapshot timers share one lifecycle; the parts that stand alone are beside it
(applying, publishing, backoff, lease, snapshots).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from promptlab.events.bus import BusError, BusUnavailable, Consumer, Delivery, EventBus
from promptlab.events.models import BaseEvent
from promptlab.learner.analysis import PromptAnalysis, analyze, rng_for
from promptlab.learner.applying import apply_isolating, apply_retrying
from promptlab.learner.backoff import learner_backoff
from promptlab.learner.config import LearnerSettings, StorageSettings
from promptlab.learner.decide import Policy, default_policy
from promptlab.learner.demo_embeddings import EmbeddingClient, PoolEmbedder
from promptlab.learner.demo_pools import DemoPoolWriter
from promptlab.learner.errors import StoreUnavailable, classify, map_store_errors
from promptlab.learner.examples import read_examples
from promptlab.learner.lease import Lease
from promptlab.learner.projection.batch import BatchResult
from promptlab.learner.projection.handlers.examples import caps_from_prompts
from promptlab.learner.projection.reward import (
    effective_promotion,
    routing_from_prompts,
    rules_from_prompts,
)
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.publishing import Outbox, publish_dead_letters, publish_status
from promptlab.learner.snapshots.analytics import AnalyticsWriter
from promptlab.learner.snapshots.routing import SnapshotWriter
from promptlab.learner.storage.store import Store
from promptlab.learner.storage.view import PromptView, load_view
from promptlab.prompts.config import PromotionConfig
from promptlab.prompts.spec import PromptSpec

if TYPE_CHECKING:
    from promptlab.lab.client import ModelClient
    from promptlab.learner.breeding import Breeder

log = logging.getLogger(__name__)


def _reraise_if_cancelled() -> None:
    """Raise CancelledError when this task is being cancelled.

    nats-py turns a cancelled wait into ``ConnectionClosedError`` once the connection
    is closing, so a cancellation can reach us as an ordinary exception; retrying then
    would keep the task alive through the event loop's shutdown.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Learner:
    """The learner service. Takes its collaborators explicitly; owns only its store
    (unless one is passed in)."""

    def __init__(
        self,
        settings: LearnerSettings,
        storage: StorageSettings,
        bus: EventBus,
        prompts: Mapping[str, PromptSpec],
        *,
        store: Store | None = None,
        policy: Policy | None = default_policy,
        fetch_timeout_s: float = 0.1,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.prompts = dict(prompts)
        self._owns_store = store is None
        self.store = store or Store(storage.url)
        self.policy = policy
        self.fetch_timeout_s = fetch_timeout_s
        self.projection = Projection(
            self.store,
            consumer=settings.durable,
            rewards=rules_from_prompts(self.prompts),
            promotion=self.promotion_config,
            routing=routing_from_prompts(self.prompts),
            examples_cap=caps_from_prompts(self.prompts),
            feedback_repeat=settings.feedback_repeat,
            feedback_wait_s=settings.feedback_wait_s,
            retention_days=settings.retention_days,
        )
        self.snapshots = SnapshotWriter(
            bus, self.store, self.load, interval_ms=settings.snapshot_interval_ms
        )
        self.analytics = AnalyticsWriter(
            bus,
            self.store,
            interval_s=settings.analytics_interval_s,
            day_refresh_s=settings.analytics_day_refresh_s,
        )
        self.demo_pools = DemoPoolWriter(
            bus,
            self.store,
            prompts=lambda: [*self.prompts.values(), *self.projection.defined.values()],
            view=self._view,
            interval_s=settings.demos_interval_s,
        )
        self._consumer: Consumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._progress = asyncio.Condition()
        self.outbox = Outbox(self.store, bus, self.projection)
        self._idle_fetches = 0
        self._status_at = -1e18
        self.lease = Lease(self.store, lease_s=settings.lease_s)
        self.active = False
        """True while this learner holds the lease and has loaded its state."""
        self.breeder: Breeder | None = None
        """Continuous breeding (``[learner.evolution]``), run beside the loop once attached."""
        self.batches = 0
        self.events = 0
        self.store_retries = 0
        """Batches applied again because the database was unavailable."""
        self.store_failures = 0
        """Database errors met anywhere in the loop (retried, never dead-lettered)."""

    # ------------------------------------------------------------------ config

    def spec(self, prompt_id: str) -> PromptSpec | None:
        """A prompt's definition: its file, else its run-time definition (admin API)."""
        return self.prompts.get(prompt_id) or self.projection.defined.get(prompt_id)

    def promotion_config(self, prompt_id: str) -> PromotionConfig:
        """A prompt's effective promotion thresholds (global + its definition)."""
        return effective_promotion(self.spec(prompt_id), self.settings.promotion)

    async def load(self, prompt_id: str) -> tuple[PromptView, PromptAnalysis] | None:
        """A prompt's view and analysis, seeded from its stream position."""
        view = await self._view(prompt_id)
        if view is None:
            return None
        return view, analyze(view, rng_for(self.settings.seed, view.last_sequence))

    async def _view(self, prompt_id: str) -> PromptView | None:
        cap, floor = self.projection.routing(prompt_id)
        config = self.promotion_config(prompt_id)
        return await load_view(
            self.store, prompt_id, config, exploration_cap=cap, exploration_floor=floor
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create tables and take the lease; when it is free, become active at once.

        When another learner holds the lease this one is on standby: :meth:`run` waits
        for the lease and then activates.
        """
        with map_store_errors():
            await self.store.create()
        if await self.lease.try_acquire():
            await self._activate()
        else:
            log.warning(
                "learner standby: another learner is active on this store (%s)",
                self.lease.backend,
            )

    async def _activate(self) -> None:
        """Load state, announce config variants, open the consumer (lease held)."""
        await self.projection.load()
        await self.outbox.reload()
        await self._register_config_variants()
        await self._open_consumer(recreate=True)
        await self.outbox.publish()
        prompt_ids = await self.store.prompt_ids()
        self.snapshots.mark(prompt_ids)
        self.analytics.mark(prompt_ids)
        self.active = True
        log.info("learner active (lease: %s)", self.lease.backend)
        await self._publish_status(force=True)

    async def heartbeat(self) -> None:
        """Publish this learner's status when due, as :meth:`run` does every round.

        For a driver that applies batches itself (:meth:`process`, the demo's waves):
        without it the TUI would call an active learner silent.
        """
        if self.active:
            await self._publish_status()

    async def _publish_status(self, *, force: bool = False, state: str = "active") -> None:
        """Write this learner's :class:`LearnerStatus` (every ``lease.retry_s`` at most)."""
        now = time.monotonic()
        if not force and now - self._status_at < self.lease.retry_s:
            return
        self._status_at = now
        await publish_status(self.bus, self.lease, self.projection, state)

    async def _register_config_variants(self) -> None:
        """Publish VariantRegistered for config variants the projection does not know.

        Ids are deterministic (prompt, variant, version, champion flag), so several
        restarts, or a sidecar announcing the same files, leave one copy in the stream.
        """
        known = self.projection.state.variants
        fresh = [
            ev
            for spec in self.prompts.values()
            for ev in spec.registered_events()
            if (ev.prompt_id, ev.variant) not in known
            or known[(ev.prompt_id, ev.variant)].version != ev.version
        ]
        if fresh:
            try:
                await self.bus.publish_many(fresh)
            except BusError as exc:
                # While NATS is down its owner says so once (events.outage).
                (log.warning if self.bus.connected else log.debug)(
                    "could not announce %d config variants yet: %s", len(fresh), exc
                )

    async def _open_consumer(self, *, recreate: bool = False) -> None:
        # The database position is the truth; the durable is only a cursor. Recreating
        # it at position + 1 makes a fresh (or restored) database resume exactly there.
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.close()
        if recreate:
            await self.bus.delete_consumer(self.settings.durable)
        self._consumer = await self.bus.consumer(
            self.settings.durable, start_sequence=self.projection.position + 1
        )

    def attach_embedder(self, client: EmbeddingClient) -> None:
        """Embed the demonstration pools of variants that retrieve by embeddings through
        ``client`` (without one, such pools are published without embeddings)."""
        self.demo_pools.vectors.embedder = PoolEmbedder(client)

    def attach_breeder(self, client: ModelClient) -> Breeder:
        """Breed challengers through ``client`` (``[learner.evolution]``) while :meth:`run` runs."""
        from promptlab.learner.breeding import Breeder

        async def view(prompt_id: str) -> PromptView | None:
            loaded = await self.load(prompt_id)
            return loaded[0] if loaded is not None else None

        self.breeder = Breeder(
            self.settings.evolution,
            bus=self.bus,
            client=client,
            prompts=self.prompts,
            views=view,
            decisions=self.store.decision_rows,
            examples=functools.partial(read_examples, self.store),
            seed=self.settings.seed,
        )
        return self.breeder

    async def run(self) -> None:
        """Consume until :meth:`stop`, with the analytics snapshots (and continuous
        breeding, when attached) beside it."""
        beside = [
            asyncio.create_task(
                self.analytics.run(
                    self._stopping,
                    active=lambda: self.active,
                    sequence=lambda: self.projection.position,
                ),
                name="promptlab-analytics",
            ),
            asyncio.create_task(
                self.demo_pools.run(
                    self._stopping,
                    active=lambda: self.active,
                    sequence=lambda: self.projection.position,
                ),
                name="promptlab-demo-pools",
            ),
        ]
        if self.breeder is not None:
            beside.append(
                asyncio.create_task(self.breeder.run(self._stopping), name="promptlab-breeder")
            )
        try:
            await self._consume()
        finally:
            for task in beside:
                task.cancel()
            for task in beside:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _consume(self) -> None:
        """Consume until :meth:`stop`; survives NATS and database outages by retrying.

        On standby, wait for the lease first; a learner that loses its lease (its
        PostgreSQL session died) stops consuming and stands by again.
        """
        backoff = learner_backoff()
        failures = 0
        while not self._stopping.is_set():
            try:
                if not self.active:
                    if not await self.lease.acquire(self._stopping):
                        return
                    log.warning("learner taking over: the lease of this store is free")
                    await self._activate()
                    failures = 0
                if not await self.lease.still_held():
                    await self._stand_by()
                    continue
                if self._consumer is None or failures >= 3:
                    await self._open_consumer()
                    failures = 0
                assert self._consumer is not None
                due = self.snapshots.next_due()
                timeout = (
                    self.fetch_timeout_s
                    if due is None
                    else min(self.fetch_timeout_s, max(due, 0.01))
                )
                deliveries = await self._fetch(self._consumer, timeout)
                if deliveries:
                    await self.process(deliveries)
                else:
                    self._idle_fetches += 1
                    async with self._progress:
                        self._progress.notify_all()
                if self.outbox.unpublished:
                    await self.outbox.publish()
                await self.snapshots.flush(learner_sequence=self.projection.position)
                await self._publish_status()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS restart, database hiccup: log, wait, retry
                _reraise_if_cancelled()
                failures += 1
                if isinstance(classify(exc), StoreUnavailable):
                    self.store_failures += 1
                # NATS away: the bus's connection says so once (events.outage); each
                # failed fetch meanwhile is no news.
                (log.debug if isinstance(exc, BusUnavailable) else log.warning)(
                    "learner loop error (%s: %s); retrying in %.2fs",
                    type(exc).__name__,
                    exc,
                    delay := backoff.next(),
                )
                await asyncio.sleep(delay)

    async def _fetch(self, consumer: Consumer, timeout: float) -> list[Delivery]:
        """A batch: what comes within ``timeout``, then what follows within the linger.

        Lingering (``batch_linger_ms``) turns a stream of small fetches into fewer,
        fuller batches: one commit, one policy run per prompt, for many events.
        """
        size = self.settings.batch_size
        deliveries = list(await consumer.fetch(size, timeout=timeout))
        linger = self.settings.batch_linger_ms / 1000.0
        if not deliveries or linger <= 0:
            return deliveries
        loop = asyncio.get_running_loop()
        until = loop.time() + linger
        while len(deliveries) < size and not self._stopping.is_set():
            left = until - loop.time()
            if left <= 0:
                break
            try:
                deliveries += await consumer.fetch(size - len(deliveries), timeout=left)
            except BusError:  # apply what came; the next fetch meets the outage
                break
        return deliveries

    async def _stand_by(self) -> None:
        self.active = False
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.close()
            self._consumer = None
        log.error("learner standing by: it no longer holds the lease of this store")

    def request_stop(self) -> None:
        """Ask :meth:`run` to return after the batch in progress (no waiting here)."""
        self._stopping.set()

    async def stop(self, timeout: float = 5.0) -> None:
        """Finish the current batch, write pending snapshots, close the consumer."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.snapshots.flush(learner_sequence=self.projection.position, force=True)
        if self.active:
            with contextlib.suppress(Exception):
                await self.analytics.flush(learner_sequence=self.projection.position)
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.close()
            self._consumer = None
        if self.active:
            await self._publish_status(force=True, state="stopped")
        self.active = False
        await self.lease.release()

    async def close(self) -> None:
        await self.stop()
        if self._owns_store:
            await self.store.close()

    async def __aenter__(self) -> Learner:
        await self.start()
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name="promptlab-learner")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ one batch

    async def process(self, deliveries: Sequence[Delivery]) -> BatchResult:
        """Apply, ack, publish answers, decide and mark snapshots for one batch."""
        try:
            result = await apply_retrying(
                self.projection, deliveries, stopping=self._stopping, on_retry=self._retried
            )
        except StoreUnavailable:
            raise
        except Exception as exc:  # StoreRejected, or a bug: maybe one event's fault
            log.warning(
                "batch of %d failed (%s: %s); applying one by one",
                len(deliveries),
                type(exc).__name__,
                exc,
            )
            result = await apply_isolating(
                self.projection, deliveries, stopping=self._stopping, on_retry=self._retried
            )
        await publish_dead_letters(self.bus, result.dead_letters)
        for d in deliveries:
            try:
                await d.ack()
            except BusError as exc:  # redelivered later, then skipped by position
                log.debug("ack of %d failed: %s", d.sequence, exc)
        for answer in result.outbox:
            self.outbox.add(answer)
        if result.applied or result.dead_letters:
            await self._decide(sorted(result.touched), result.position)
        await self.outbox.publish()
        self.snapshots.mark(result.touched)
        self.analytics.mark(result.touched)
        self.batches += 1
        self.events += result.applied
        async with self._progress:
            self._progress.notify_all()
        return result

    def _retried(self) -> None:
        self.store_retries += 1
        self.store_failures += 1

    async def _decide(self, prompt_ids: Sequence[str], trigger_sequence: int) -> None:
        """Run the policy on the prompts a batch touched; record what it decided."""
        if self.policy is None:
            return
        busy = set(self.projection.in_flight.values())
        decided: list[tuple[str, BaseEvent]] = []
        for prompt_id in prompt_ids:
            if prompt_id in busy:
                continue  # one decision at a time: wait until the last one is projected
            view = await self._view(prompt_id)
            if view is None:
                continue
            rng = rng_for(self.settings.seed, trigger_sequence)
            event = self.policy(view, rng, trigger_sequence)
            if event is not None:
                decided.append((prompt_id, event))
        await self.outbox.record(decided)

    # ------------------------------------------------------------------ waiting (tests, CLI)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds after some batch (TimeoutError otherwise)."""

        async def _wait() -> None:
            async with self._progress:
                await self._progress.wait_for(predicate)

        await asyncio.wait_for(_wait(), timeout)

    async def caught_up(self, timeout: float = 10.0) -> int:
        """Wait until the projection has applied everything in the stream now.

        Dead letters sit in the stream too but are never delivered, so "caught up" also
        means two empty fetches in a row after this call began.
        """
        target = await self.bus.last_sequence()
        idle = self._idle_fetches

        def done() -> bool:
            return (
                self.projection.position >= target
                or self._idle_fetches >= idle + 2
                or self._stopping.is_set()
            )

        await self.wait_for(done, timeout)
        return self.projection.position
