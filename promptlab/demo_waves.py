"""The demo's pacing: traffic in waves, the learner stepped between them.

A live learner decides after whatever batch a fetch happened to return, so under load
its decision points, and hence the demo's story, depend on timing. The demo instead:

1. sends one wave of calls (concurrently; the router's table does not change during a
   wave, so the variants it draws are the same multiset whatever order calls arrive in,
   and the simulated users' feedback is keyed by variant and answer number);
2. flushes the sidecar's publisher, then applies everything in the stream as one batch
   (:meth:`LearnerStepper.step`): one decision point per wave; decisions it publishes
   are applied in a next batch the same way, until the stream is exhausted;
3. writes the snapshots and waits until the sidecar routes by the new one.

So ``promptlab demo --seed N`` makes the same decisions after the same number of calls
every run. The learner itself is the production one; only who calls it changes.

With the TUI (``live``), each step also publishes what a running learner publishes
beside its batches: its status (else the TUI calls it silent) and, every
``learner.analytics_interval_s``, the analytics snapshots. Once the traffic is over,
:func:`keep_learning` runs the learner's own loop until the user quits, so commands sent
from the TUI are still carried out. Neither changes a decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from promptlab.events.bus import Delivery, EventBus
from promptlab.events.models import BaseEvent
from promptlab.events.snapshots import RoutingSnapshot
from promptlab.events.subjects import Bucket

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 0.5
STEP_TIMEOUT_S = 30.0


class LearnerStepper:
    """Applies the stream to a started (not running) learner, one batch per call."""

    def __init__(self, learner: Any, bus: EventBus, *, live: bool = False) -> None:
        self.learner = learner
        self.bus = bus
        self.live = live
        self._consumer: Any = None
        self.position = 0
        self._analytics_at = -float("inf")

    async def open(self) -> None:
        self._consumer = await self.bus.consumer(
            self.learner.settings.durable, start_sequence=self.learner.projection.position + 1
        )

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.close()
            self._consumer = None

    async def _drain(self, target: int) -> list[Delivery]:
        """Every delivery up to stream sequence ``target``."""
        assert self._consumer is not None
        out: list[Delivery] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP_TIMEOUT_S
        while self.learner.projection.position < target and (
            not out or max(d.sequence for d in out) < target
        ):
            if loop.time() > deadline:
                raise TimeoutError(f"the stream did not deliver up to sequence {target}")
            out += await self._consumer.fetch(10_000, timeout=FETCH_TIMEOUT_S)
        return sorted({d.sequence: d for d in out}.values(), key=lambda d: d.sequence)

    async def step(self, on_event: Callable[[BaseEvent], None]) -> None:
        """Apply all of the stream, a batch at a time, until nothing new is published.

        ``on_event`` sees every applied event, in stream order (decisions included).
        """
        while True:
            target = await self.bus.last_sequence()
            if target <= self.learner.projection.position:
                break
            deliveries = await self._drain(target)
            if not deliveries:
                break
            await self.learner.process(deliveries)
            for d in deliveries:
                if d.event is not None:
                    on_event(d.event)
        await self.learner.snapshots.flush(
            learner_sequence=self.learner.projection.position, force=True
        )
        if self.live:
            await self._publish_beside()

    async def _publish_beside(self) -> None:
        """The learner's status and, when due, its analytics snapshots (for the TUI)."""
        await self.learner.heartbeat()
        analytics = self.learner.analytics
        now = asyncio.get_running_loop().time()
        if analytics.interval_s > 0 and now - self._analytics_at >= analytics.interval_s:
            self._analytics_at = now
            await analytics.flush(learner_sequence=self.learner.projection.position)


async def keep_learning(learner: Any, stepper: LearnerStepper, stop: asyncio.Event) -> None:
    """After the traffic: the learner's own loop until ``stop`` (the user quit the TUI).

    The stepper's consumer is closed first; the learner reads on from its durable.
    """
    await stepper.close()
    task = asyncio.create_task(learner.run(), name="promptlab-demo-learner")
    try:
        await stop.wait()
    finally:
        learner.request_stop()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, STEP_TIMEOUT_S)


async def routed_by_latest(bus: EventBus, router: Any, prompt_id: str) -> None:
    """Wait until ``router`` routes ``prompt_id`` by the snapshot now in KV."""
    entry = await bus.kv_get(str(Bucket.ROUTING), prompt_id)
    if entry is None or entry.value is None:
        return
    want = RoutingSnapshot.decode(entry.value).version
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT_S
    while True:
        current = router.snapshot(prompt_id)
        if current is not None and current.version >= want:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"the sidecar did not take routing snapshot {want}")
        await asyncio.sleep(0.005)
