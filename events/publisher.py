"""EventPublisher: publishing that never blocks or fails the caller.

``publish(event)`` is a plain method called on every request: it appends the event to a
bounded in-memory queue and returns (no JSON, no disk, no await). Background work:

* the *pump* takes batches off the queue and sends them with pipelined acks
  (:meth:`EventBus.publish_many`). It lingers ``linger_s`` (default 2 ms) for a batch to
  fill before it sends, as Kafka producers do: on the bench box a JetStream publish costs
  about 160 us of CPU alone, 75 us per event in batches of 4 and 35 us in batches of 64,
  and without lingering a busy sidecar sends batches of one or two. The linger is kept
  short because a batch is encoded and sent in one step of the event loop, which the
  calls being served wait for. ``flush()`` and a full batch cut the wait short. When the
  bus fails, the batch goes to the durable
  :class:`~events.outbox.Outbox` instead, and so do further batches until NATS is back;
* the *drainer* re-publishes the outbox with the same event ids once the bus answers
  again (JetStream drops copies of ids it already holds), deleting segments only after
  their acks.

When the queue is full the event is appended to the outbox directly (the only case where
``publish`` encodes JSON or touches disk), so memory stays bounded and nothing is lost.

An event that cannot be encoded at all (it could reach neither the stream nor the
outbox) is set aside in the :class:`~events.rejects.RejectFile` with a log line and
counted in :attr:`EventPublisher.rejected`; the events around it go on. The pump never
dies of an exception; :attr:`EventPublisher.running` says whether both background tasks
are alive (the sidecar's ``/readyz`` fails when they are not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from promptlab.events.bus import BusError, EventBus
from promptlab.events.models import BaseEvent
from promptlab.events.outbox import Outbox
from promptlab.events.rejects import RejectFile, unencodable

log = logging.getLogger(__name__)


class EventPublisher:
    """Queue events in memory, publish them in batches, spill to disk while NATS is away."""

    def __init__(
        self,
        bus: EventBus,
        outbox_dir: Path | str,
        queue_size: int = 20_000,
        *,
        batch_size: int = 500,
        publish_timeout: float = 5.0,
        retry_interval: float = 0.25,
        linger_s: float = 0.002,
    ) -> None:
        self.bus = bus
        self.outbox = Outbox(outbox_dir)
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.publish_timeout = publish_timeout
        self.retry_interval = retry_interval
        self.linger_s = linger_s
        """How long the pump waits for a batch to fill before sending a partial one."""
        self.published = 0
        """Events acknowledged by the stream (including outbox re-publishes)."""
        self.spilled_to_outbox = 0
        """Events written to the outbox (bus down, or queue full)."""
        self.dropped = 0
        """Events lost because even the outbox could not be written (disk error)."""
        self.publish_failures = 0
        """Batches NATS did not take (each then went to the outbox)."""
        self.rejects = RejectFile(outbox_dir)
        self._queue: deque[BaseEvent] = deque()
        self._inflight: list[BaseEvent] = []
        self._wake = asyncio.Event()
        self._lingering: asyncio.Future[None] | None = None
        self._healthy = True
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ hot path

    def publish(self, event: BaseEvent) -> None:
        """Hand an event over; returns at once and never raises."""
        if len(self._queue) < self.queue_size and not self._closed:
            self._queue.append(event)
            if not self._wake.is_set():
                self._wake.set()
            elif self._lingering is not None and len(self._queue) >= self.batch_size:
                self._stop_lingering()
            return
        self._spill([event], sync=self._closed)
        if self._closed:
            # Nobody will rotate this segment any more: close it for the next process.
            with contextlib.suppress(OSError):
                self.outbox.rotate()

    async def publish_durable(self, events: Sequence[BaseEvent], timeout: float = 5.0) -> str:
        """Hand events over and return once they are durable: ``"stream"`` when JetStream
        acknowledged them, ``"outbox"`` when they were fsynced to the outbox instead (NATS
        away, or the outbox already holds older events, which keep their order).

        For the writes a caller is told succeeded (an admin definition): ``publish`` may
        still hold an event in memory when the process dies. Raises :class:`BusError`
        when neither the stream nor the disk took them.
        """
        if not events:
            return "stream"
        if self._healthy and not self.outbox.pending and self.bus.connected:
            try:
                await self.bus.publish_many(events, timeout=timeout)
            except BusError as exc:
                log.warning("event bus unavailable, writing to the outbox: %s", exc)
                self._healthy = False
                self.publish_failures += 1
            else:
                self.published += len(events)
                return "stream"
        try:
            self.outbox.append(events, sync=True)
        except OSError as exc:
            raise BusError(f"events could not be made durable (outbox: {exc})") from exc
        self.spilled_to_outbox += len(events)
        return "outbox"

    # ------------------------------------------------------------------ state

    @property
    def queue_depth(self) -> int:
        """Events waiting in memory (including a batch being published)."""
        return len(self._queue) + len(self._inflight)

    @property
    def outbox_pending(self) -> int:
        """Events on disk waiting for NATS."""
        return self.outbox.pending

    @property
    def outbox_active(self) -> bool:
        """True while the outbox holds events that NATS has not acknowledged."""
        return self.outbox.pending > 0

    @property
    def rejected(self) -> int:
        """Events set aside in the reject file because they cannot be encoded."""
        return self.rejects.count

    @property
    def running(self) -> bool:
        """True while the pump and the outbox drainer are both alive."""
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    @property
    def healthy(self) -> bool:
        """True while batches reach NATS directly (False: they go to the outbox)."""
        return self._healthy

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the background pump and outbox drainer (idempotent)."""
        if self._tasks:
            return
        self._closed = False
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._pump(), name="promptlab-publisher-pump"),
            loop.create_task(self._drain(), name="promptlab-outbox-drain"),
        ]

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is empty and the outbox drained; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queue or self._inflight or self.outbox.pending:
            if loop.time() >= deadline or not self._tasks:
                return False
            self._wake.set()
            self._stop_lingering()
            await asyncio.sleep(0.005)
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Flush for up to ``timeout`` seconds, then keep whatever is left in the outbox."""
        with contextlib.suppress(Exception):
            await self.flush(timeout)
        self._closed = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # A batch cut off mid-publish may or may not have been stored: the outbox copy is
        # deduplicated by its event id if it was.
        leftover = self._inflight + list(self._queue)
        self._inflight, self._queue = [], deque()
        self._spill(leftover, sync=True)
        self.outbox.close()

    # ------------------------------------------------------------------ background

    def _spill(self, events: Sequence[BaseEvent], *, sync: bool) -> None:
        if not events:
            return
        try:
            try:
                self.outbox.append(events, sync=sync)
            except OSError:
                raise
            except Exception:
                # Not the disk: an event that cannot be encoded. Set it aside, keep the rest.
                events = self._screen(events)
                self.outbox.append(events, sync=sync)
            self.spilled_to_outbox += len(events)
        except OSError as exc:
            self.dropped += len(events)
            log.error("outbox write failed, %d events lost: %s", len(events), exc)

    def _screen(self, events: Sequence[BaseEvent]) -> list[BaseEvent]:
        """``events`` minus those that cannot be encoded, which go to the reject file."""
        kept = []
        for event in events:
            error = unencodable(event)
            if error is None:
                kept.append(event)
            else:
                self.rejects.add(event, error)
        return kept

    def _stop_lingering(self) -> None:
        lingering = self._lingering
        if lingering is not None and not lingering.done():
            lingering.set_result(None)

    async def _linger(self) -> None:
        """Wait up to ``linger_s`` for more events (a full batch or flush() ends it)."""
        loop = asyncio.get_running_loop()
        lingering = self._lingering = loop.create_future()
        timer = loop.call_later(self.linger_s, self._stop_lingering)
        try:
            await lingering
        finally:
            timer.cancel()
            self._lingering = None

    async def _pump(self) -> None:
        while True:
            try:
                await self._pump_batches()
            except asyncio.CancelledError:
                raise
            except Exception:  # pragma: no cover - a bug; publishing must go on regardless
                log.exception("event publisher pump failed; restarting it")
                self._spill(self._inflight, sync=True)
                self._inflight = []
                await asyncio.sleep(self.retry_interval)

    async def _pump_batches(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                # Overflow appends skip the fsync; sync them while idle.
                self._sync_outbox()
                await self._wake.wait()
                continue
            if self.linger_s > 0 and len(self._queue) < self.batch_size:
                await self._linger()
            n = min(self.batch_size, len(self._queue))
            self._inflight = [self._queue.popleft() for _ in range(n)]
            batch = self._inflight
            if self._healthy:
                try:
                    await self.bus.publish_many(batch, timeout=self.publish_timeout)
                    self.published += len(batch)
                    self._inflight = []
                    continue
                except BusError as exc:
                    # While NATS is down its owner says so once (events.outage).
                    (log.warning if self.bus.connected else log.debug)(
                        "event bus unavailable, spilling to outbox: %s", exc
                    )
                    self._healthy = False
                    self.publish_failures += 1
                except Exception:
                    screened = self._screen(batch)
                    if len(screened) < len(batch):
                        # Unencodable events set aside: the rest go first in the next batch.
                        self._queue.extendleft(reversed(screened))
                        self._inflight = []
                        continue
                    # A bug must not stop publishing: keep the events.
                    log.exception("publishing a batch failed, spilling to outbox")
                    self._healthy = False
                    self.publish_failures += 1
            self._spill(batch, sync=True)
            self._inflight = []

    def _sync_outbox(self) -> None:
        try:
            self.outbox.sync()
        except OSError as exc:
            log.error("outbox fsync failed: %s", exc)

    async def _drain(self) -> None:
        while True:
            if not self.outbox.pending and self._healthy:
                await asyncio.sleep(self.retry_interval)
                continue
            if not self.bus.connected:
                await asyncio.sleep(self.retry_interval)
                continue
            try:
                self._sync_outbox()
                batch = self.outbox.next_batch(self.batch_size)
            except OSError as exc:
                log.error("outbox read failed: %s", exc)
                await asyncio.sleep(self.retry_interval)
                continue
            if batch is None:
                # Nothing on disk (or only segments another process drains): the bus
                # answered the connection check, so let the pump try it again.
                self._healthy = True
                await asyncio.sleep(self.retry_interval)
                continue
            try:
                if batch.events:
                    await self.bus.publish_many(batch.events, timeout=self.publish_timeout)
            except BusError as exc:
                log.debug("outbox drain waits for the bus: %s", exc)
                await asyncio.sleep(self.retry_interval)
                continue
            except Exception:
                log.exception("re-publishing the outbox failed")
                await asyncio.sleep(self.retry_interval)
                continue
            self.published += len(batch.events)
            self.outbox.commit(batch)
            self._healthy = True
