"""MemoryBus: the EventBus protocol in one process, for unit tests of other packages.

It behaves like the JetStream bus where tests can tell the difference: sequence numbers
start at 1, a second event with the same ``event_id`` inside the duplicate window is
dropped (the ack names the first copy's sequence), durable consumers resume after their
last delivery and redeliver what was fetched but not acked once ``ack_wait_s`` has
passed, KV revisions grow per bucket and watches see current values then updates.

Two switches help tests of code that must survive an outage: :meth:`MemoryBus.set_available`
makes publishes raise :class:`BusUnavailable` until switched back.

Consumers and :meth:`read` see only :data:`CONSUMED_SUBJECTS` (every event subject but
dead letters), like the JetStream bus's subject filter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from promptlab.events.bus import BusError, BusUnavailable, Delivery, KVEntry, PublishAck
from promptlab.events.models import BaseEvent, EventDecodeError, decode, encode
from promptlab.events.subjects import CONSUMED_SUBJECTS, STREAM_SUBJECTS, Bucket

DEFAULT_BUCKETS: tuple[str, ...] = tuple(b.value for b in Bucket)
"""KV buckets a bus provides unless told otherwise."""


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more tokens."""
    want = pattern.split(".")
    have = subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


"""What durable consumers and :meth:`read` see: every event subject, not dead letters.

Both buses filter by this list, so a consumer that dead-letters undecodable bytes never
meets them again."""


def is_consumable(subject: str) -> bool:
    """True for subjects consumers and readers see (:data:`CONSUMED_SUBJECTS`)."""
    return subject in _CONSUMED


_CONSUMED = frozenset(CONSUMED_SUBJECTS)


@dataclass(slots=True)
class _Message:
    sequence: int
    subject: str
    data: bytes
    event: BaseEvent | None
    error: str | None


@dataclass(slots=True)
class _ConsumerState:
    next_sequence: int
    """Next stream sequence never delivered to this durable."""
    pending: dict[int, float] = field(default_factory=dict)
    """Delivered but not acked: sequence -> monotonic time when it may be redelivered."""
    deliveries: dict[int, int] = field(default_factory=dict)
    """How many times each pending sequence was delivered."""


class _MemoryConsumer:
    """A handle on one durable's shared state; several handles share the work."""

    def __init__(self, bus: MemoryBus, durable: str) -> None:
        self._bus = bus
        self._durable = durable
        self._closed = False

    async def fetch(self, batch: int = 100, timeout: float = 1.0) -> list[Delivery]:
        """Up to ``batch`` messages: expired unacked ones first, then new ones."""
        if self._closed:
            raise BusError(f"consumer {self._durable!r} is closed")
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            state = self._bus._consumers.get(self._durable)
            if state is None:
                raise BusError(f"consumer {self._durable!r} was deleted")
            out = self._bus._take(self._durable, state, batch)
            if out:
                return out
            now = time.monotonic()
            wait = deadline - now
            if state.pending:
                wait = min(wait, min(state.pending.values()) - now)
            if deadline - now <= 0:
                return []
            changed = self._bus._changed
            try:
                await asyncio.wait_for(changed.wait(), timeout=max(wait, 0.001))
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Stop using this handle; the durable and its position stay."""
        self._closed = True


class MemoryBus:
    """An in-process event bus with the semantics of the JetStream bus.

    Usable right after construction (``start()`` is optional); ``close()`` makes it
    unavailable until ``start()`` is called again.
    """

    def __init__(
        self,
        *,
        duplicate_window_s: float = 120.0,
        ack_wait_s: float = 30.0,
        buckets: Iterable[str] = DEFAULT_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.duplicate_window_s = duplicate_window_s
        self.ack_wait_s = ack_wait_s
        self._clock = clock
        self._messages: list[_Message] = []
        self._dedupe: dict[str, tuple[int, float]] = {}
        self._consumers: dict[str, _ConsumerState] = {}
        self._subscribers: list[tuple[tuple[str, ...], asyncio.Queue[BaseEvent]]] = []
        self._kv: dict[str, dict[str, KVEntry]] = {str(b): {} for b in buckets}
        self._kv_revision: dict[str, int] = dict.fromkeys(self._kv, 0)
        self._kv_watchers: dict[str, list[asyncio.Queue[KVEntry]]] = {b: [] for b in self._kv}
        self._changed = asyncio.Event()
        self._open = True
        self._available = True

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Make the bus usable again after :meth:`close`. Idempotent."""
        self._open = True

    async def close(self) -> None:
        """Refuse further publishes; stored events and consumers are kept."""
        self._open = False
        self._notify()

    @property
    def connected(self) -> bool:
        """True while the bus is open and not switched to unavailable."""
        return self._open and self._available

    def set_available(self, available: bool) -> None:
        """Simulate an outage (``False``): publishes raise :class:`BusUnavailable`."""
        self._available = available

    def _check(self) -> None:
        if not self._open:
            raise BusUnavailable("memory bus is closed")
        if not self._available:
            raise BusUnavailable("memory bus is unavailable (simulated outage)")

    def _notify(self) -> None:
        # Wake every waiter, then hand out a fresh event for the next wait.
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ publishing

    async def publish(self, event: BaseEvent, *, timeout: float = 5.0) -> PublishAck:
        """Append one event; a repeat of an id inside the window returns the first ack."""
        self._check()
        return self._append(event.nats_subject.value, encode(event), event, None, event.event_id)

    async def publish_many(
        self, events: Sequence[BaseEvent], *, timeout: float = 5.0
    ) -> list[PublishAck]:
        """Append several events in order."""
        self._check()
        return [self._append(e.nats_subject.value, encode(e), e, None, e.event_id) for e in events]

    async def publish_raw(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Store bytes that are not (or not known to be) an event."""
        self._check()
        try:
            event: BaseEvent | None = decode(data)
            error = None
        except EventDecodeError as exc:
            event, error = None, str(exc)
        msg_id = (headers or {}).get("Nats-Msg-Id")
        self._append(subject, data, event, error, msg_id)

    def _append(
        self,
        subject: str,
        data: bytes,
        event: BaseEvent | None,
        error: str | None,
        msg_id: str | None,
    ) -> PublishAck:
        now = self._clock()
        if msg_id is not None:
            seen = self._dedupe.get(msg_id)
            if seen is not None and now - seen[1] < self.duplicate_window_s:
                return PublishAck(sequence=seen[0], duplicate=True)
        if not any(subject_matches(p, subject) for p in STREAM_SUBJECTS):
            # Like core NATS: subscribers see it, the stream does not keep it.
            self._fan_out(subject, event)
            return PublishAck(sequence=0)
        sequence = len(self._messages) + 1
        self._messages.append(_Message(sequence, subject, data, event, error))
        if msg_id is not None:
            self._dedupe[msg_id] = (sequence, now)
            if len(self._dedupe) > 10_000 and sequence % 1000 == 0:
                self._prune_dedupe(now)
        self._fan_out(subject, event)
        self._notify()
        return PublishAck(sequence=sequence)

    def _prune_dedupe(self, now: float) -> None:
        window = self.duplicate_window_s
        self._dedupe = {k: v for k, v in self._dedupe.items() if now - v[1] < window}

    def _fan_out(self, subject: str, event: BaseEvent | None) -> None:
        if event is None:
            return
        for patterns, queue in self._subscribers:
            if any(subject_matches(p, subject) for p in patterns):
                queue.put_nowait(event)

    # ------------------------------------------------------------------ consuming

    async def consumer(self, durable: str, *, start_sequence: int = 1) -> _MemoryConsumer:
        """A durable consumer; ``start_sequence`` counts only when it is created."""
        self._check()
        if durable not in self._consumers:
            self._consumers[durable] = _ConsumerState(next_sequence=max(start_sequence, 1))
        return _MemoryConsumer(self, durable)

    async def delete_consumer(self, durable: str) -> None:
        """Forget a durable and its position (no error when it does not exist)."""
        self._consumers.pop(durable, None)
        self._notify()

    def _take(self, durable: str, state: _ConsumerState, batch: int) -> list[Delivery]:
        now = self._clock()
        chosen = sorted(seq for seq, due in state.pending.items() if due <= now)[:batch]
        while len(chosen) < batch and state.next_sequence <= len(self._messages):
            msg = self._messages[state.next_sequence - 1]
            state.next_sequence += 1
            if is_consumable(msg.subject):
                chosen.append(msg.sequence)
        out = []
        for seq in chosen:
            msg = self._messages[seq - 1]
            state.pending[seq] = now + self.ack_wait_s
            count = state.deliveries.get(seq, 0) + 1
            state.deliveries[seq] = count
            out.append(
                Delivery(
                    sequence=seq,
                    event=msg.event,
                    data=msg.data,
                    num_delivered=count,
                    error=msg.error,
                    _ack=self._acker(durable, seq),
                )
            )
        return out

    def _acker(self, durable: str, sequence: int) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            state = self._consumers.get(durable)
            if state is not None:
                state.pending.pop(sequence, None)
                state.deliveries.pop(sequence, None)

        return ack

    async def last_sequence(self) -> int:
        """Sequence of the newest stored message (0 when empty)."""
        return len(self._messages)

    async def consumer_pending(self, durable: str) -> int | None:
        """Events a durable has not acknowledged yet (None when it does not exist)."""
        state = self._consumers.get(durable)
        if state is None:
            return None
        undelivered = sum(
            1 for m in self._messages[state.next_sequence - 1 :] if is_consumable(m.subject)
        )
        return undelivered + len(state.pending)

    async def subject_count(self, subject: str) -> int:
        """Messages stored on exactly ``subject``."""
        return sum(1 for m in self._messages if m.subject == subject)

    async def read(
        self,
        start_sequence: int = 1,
        *,
        stop_at_end: bool = True,
        subjects: Sequence[str] | None = None,
    ) -> AsyncIterator[tuple[int, BaseEvent | None, bytes]]:
        """Stored events in order from ``start_sequence`` (dead letters skipped; only
        those on ``subjects`` when given)."""
        wanted = [str(subject) for subject in subjects or ()]
        end = len(self._messages)
        seq = max(start_sequence, 1)
        while True:
            while seq <= len(self._messages) and (not stop_at_end or seq <= end):
                msg = self._messages[seq - 1]
                seq += 1
                if is_consumable(msg.subject) and (
                    not wanted or any(subject_matches(p, msg.subject) for p in wanted)
                ):
                    yield msg.sequence, msg.event, msg.data
            if stop_at_end:
                return
            await self._changed.wait()

    async def subscribe(
        self, subjects: Sequence[str] = ("promptlab.>",)
    ) -> AsyncIterator[BaseEvent]:
        """Live events published from the first iteration on."""
        queue: asyncio.Queue[BaseEvent] = asyncio.Queue()
        entry = (tuple(str(s) for s in subjects), queue)
        self._subscribers.append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(entry)

    # ------------------------------------------------------------------ key-value

    def _bucket(self, bucket: str) -> dict[str, KVEntry]:
        try:
            return self._kv[str(bucket)]
        except KeyError:
            raise BusError(f"unknown KV bucket {bucket!r}") from None

    async def kv_put(self, bucket: str, key: str, value: bytes) -> int:
        """Store ``value`` under ``key``; returns the bucket's new revision."""
        self._check()
        return self._kv_write(bucket, key, value)

    async def kv_delete(self, bucket: str, key: str) -> None:
        """Delete a key (watchers see an entry with ``value=None``)."""
        self._check()
        if key in self._bucket(bucket):
            self._kv_write(bucket, key, None)

    def _kv_write(self, bucket: str, key: str, value: bytes | None) -> int:
        values = self._bucket(bucket)
        name = str(bucket)
        revision = self._kv_revision[name] + 1
        self._kv_revision[name] = revision
        entry = KVEntry(key=key, value=value, revision=revision)
        values[key] = entry
        for queue in self._kv_watchers[name]:
            queue.put_nowait(entry)
        return revision

    async def kv_get(self, bucket: str, key: str) -> KVEntry | None:
        """The current entry of ``key``, or None when absent or deleted."""
        entry = self._bucket(bucket).get(key)
        return entry if entry is not None and entry.value is not None else None

    async def kv_keys(self, bucket: str) -> list[str]:
        """Keys that currently hold a value, sorted."""
        return sorted(k for k, e in self._bucket(bucket).items() if e.value is not None)

    async def kv_watch(self, bucket: str) -> AsyncIterator[KVEntry]:
        """Current values (by revision), then every put and delete as it happens."""
        values = self._bucket(bucket)
        queue: asyncio.Queue[KVEntry] = asyncio.Queue()
        watchers = self._kv_watchers[str(bucket)]
        watchers.append(queue)
        try:
            for entry in sorted(values.values(), key=lambda e: e.revision):
                if entry.value is not None:
                    yield entry
            while True:
                yield await queue.get()
        finally:
            watchers.remove(queue)
