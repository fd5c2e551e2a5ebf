"""The feed: keeps a :class:`~tui.state.LabState` current from the event bus.

Three loops run as asyncio tasks on the app's event loop:

* watch ``promptlab_stats`` (what the screens show), ``promptlab_routing``
  (posteriors, pause state) and ``promptlab_analytics`` (the analytics tab): current
  values first, then every update;
* the live subjects, after a short read of recent history (the last
  ``history_events`` of the stream) so the execution feed, the decision log and the
  variant templates are not empty at start.

Every loop survives a broken iterator: it waits ``retry_s`` and starts again. The
JetStream bus reconnects by itself; when the link comes back the KV watches are started
afresh (a watch may silently die with the server) and re-deliver current values, which
the state drops by KV revision. The live subscription is core NATS, which the client
re-subscribes by itself; events published while the link was down are not shown. Nothing here redraws anything: the app
polls :attr:`LabState.revision`, which is how updates are coalesced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from promptlab.events import (
    BaseEvent,
    Bucket,
    EventBus,
    EventDecodeError,
    KVEntry,
    VariantRegistered,
    decode,
)
from promptlab.events.snapshots import LearnerStatus
from promptlab.events.watching import follow
from promptlab.tui.state import LabState

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class Feed:
    """Consumes the bus into ``state`` until :meth:`stop`."""

    def __init__(
        self,
        bus: EventBus,
        state: LabState,
        *,
        clock: Clock = time.monotonic,
        history_events: int = 2000,
        retry_s: float = 1.0,
        connect_timeout_s: float = 10.0,
        poll_s: float = 0.25,
    ) -> None:
        self.bus = bus
        self.state = state
        self.clock = clock
        self.history_events = history_events
        self.retry_s = retry_s
        self.connect_timeout_s = connect_timeout_s
        self.poll_s = poll_s
        """How often the link is checked for a reconnect (which restarts the watches)."""
        self.ever_connected = False
        self.connect_error: str | None = None
        """Why the first connection failed, for the status line."""
        self._history_done = False
        self._buffer: deque[BaseEvent] = deque(maxlen=20_000)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def connected(self) -> bool:
        try:
            up = bool(self.bus.connected)
        except Exception:  # a bus that cannot even say is not connected
            up = False
        if up:
            self.ever_connected = True
        return up

    async def start(self) -> None:
        """Start the loops in the background; returns at once."""
        self._tasks = [asyncio.create_task(self._run(), name="tui-feed")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    # ------------------------------------------------------------------ loops

    async def _run(self) -> None:
        await self._connect()
        watches = self._start_watches()
        live = self._spawn(self._live(), "tui-live")
        # Let the live subscription open before reading history, to keep the gap small;
        # what overlaps is dropped by execution and event id.
        await asyncio.sleep(0.05)
        history = self._spawn(self._history(), "tui-history")
        was_up = True
        try:
            while True:
                await asyncio.sleep(self.poll_s)
                up = self.connected
                if up and not was_up:
                    # A KV watch is a JetStream consumer that may not survive a server
                    # restart, and it would not say so: start fresh ones. They re-deliver
                    # current values, which the state drops by revision if already seen.
                    for task in watches:
                        task.cancel()
                    watches = self._start_watches()
                was_up = up
        finally:
            for task in (*watches, live, history):
                task.cancel()

    def _start_watches(self) -> list[asyncio.Task[None]]:
        return [
            self._spawn(self._watch(str(Bucket.STATS), self._on_stats), "tui-watch-stats"),
            self._spawn(
                self._watch(str(Bucket.ROUTING), self.state.apply_routing), "tui-watch-routing"
            ),
            # Templates of every variant, however far back in the stream it was registered.
            self._spawn(self._watch(str(Bucket.VARIANTS), self._on_variant), "tui-watch-variants"),
            self._spawn(self._watch(str(Bucket.LEARNER), self._on_learner), "tui-watch-learner"),
            self._spawn(
                self._watch(str(Bucket.ANALYTICS), self.state.apply_analytics),
                "tui-watch-analytics",
            ),
        ]

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return asyncio.create_task(coro, name=name)

    async def _connect(self) -> None:
        """Start the bus unless it is up; on failure remember why and retry for ever."""
        while not self.connected:
            try:
                await asyncio.wait_for(self.bus.start(), self.connect_timeout_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connect_error = _describe(exc)
                log.warning("cannot connect to NATS: %s", self.connect_error)
                self.state.revision += 1  # the status line changed
                await asyncio.sleep(self.retry_s)
        self.connect_error = None

    def _on_variant(self, entry: KVEntry) -> None:
        if entry.value is None:
            return
        try:
            event = decode(entry.value)
        except EventDecodeError:
            return
        if isinstance(event, VariantRegistered):
            self.state.apply_variant(event)

    def _on_learner(self, entry: KVEntry) -> None:
        if entry.key != "status" or entry.value is None:
            return
        try:
            self.state.learner = LearnerStatus.decode(entry.value)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            log.warning("ignoring a learner status: %s", exc)
            return
        self.state.learner_seen_at = self.clock()
        self.state.revision += 1

    def _on_stats(self, entry: KVEntry) -> None:
        self.state.apply_stats(entry, now=self.clock())

    async def _watch(self, bucket: str, apply: Callable[[KVEntry], None]) -> None:
        await follow(
            self.bus, bucket, apply, what=f"watch of {bucket}", logger=log,
            retry_s=self.retry_s, deletions=True,
        )  # fmt: skip

    async def _live(self) -> None:
        while True:
            try:
                async for event in self.bus.subscribe():
                    if self._history_done:
                        self.state.apply_event(event, now=self.clock())
                    else:
                        self._buffer.append(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("live subscription broke (%s); subscribing again", _describe(exc))
            await asyncio.sleep(self.retry_s)

    async def _history(self) -> None:
        """Apply the tail of the stream as history (no toasts), then the buffered live events."""
        try:
            if self.history_events > 0:
                last = await self.bus.last_sequence()
                start = max(1, last - self.history_events + 1)
                if last > 0:
                    async for _seq, event, _raw in self.bus.read(start):
                        if event is not None:
                            self.state.apply_event(event, now=self.clock(), live=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("could not read recent history (%s); showing live events only", _describe(exc))
        finally:
            self._history_done = True
            now = self.clock()
            while self._buffer:
                self.state.apply_event(self._buffer.popleft(), now=now)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
