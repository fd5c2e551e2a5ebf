"""The EventBus protocol: what every package of promptlab may ask of the event log.

Two implementations pass one contract suite (``tests/events/test_bus_contract.py``):
:class:`events.jetstream.JetStreamBus` (production) and :class:`events.memory.MemoryBus`
(unit tests of other packages). Code that needs the bus takes it as a parameter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from promptlab.events.errors import EventsError
from promptlab.events.models import BaseEvent


class BusError(EventsError):
    """Base class of event bus failures."""


class BusUnavailable(BusError):
    """The bus cannot be reached now (NATS down, not connected). Retry later."""


@dataclass(frozen=True, slots=True)
class PublishAck:
    """The stream's answer to a publish."""

    sequence: int
    duplicate: bool = False
    """True when the stream already held an event with this id (deduplicated)."""


@dataclass(slots=True)
class Delivery:
    """One message handed to a durable consumer.

    ``event`` is None when the payload could not be decoded; ``error`` says why and
    ``data`` keeps the raw bytes for the dead-letter subject.
    """

    sequence: int
    """Stream sequence of the message (the projection's tracking position)."""
    event: BaseEvent | None
    data: bytes
    num_delivered: int = 1
    error: str | None = None
    _ack: object = None

    async def ack(self) -> None:
        """Acknowledge: the consumer will not see this message again."""
        if self._ack is not None:
            await self._ack()  # type: ignore[operator]


@dataclass(frozen=True, slots=True)
class KVEntry:
    """One value of a key-value bucket."""

    key: str
    value: bytes | None
    """None when the key was deleted."""
    revision: int


@runtime_checkable
class Consumer(Protocol):
    """A durable pull consumer: it resumes where it last acked, across restarts."""

    async def fetch(self, batch: int = 100, timeout: float = 1.0) -> list[Delivery]:
        """Wait up to ``timeout`` seconds for up to ``batch`` messages (may return [])."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class EventBus(Protocol):
    """Publish events, consume them durably, read live subjects, share snapshots in KV."""

    async def start(self) -> None:
        """Connect and create (or update) the stream and buckets. Idempotent."""
        ...

    async def close(self) -> None: ...

    @property
    def connected(self) -> bool: ...

    async def publish(self, event: BaseEvent, *, timeout: float = 5.0) -> PublishAck:
        """Append one event, with its ``event_id`` as message id; wait for the ack.

        Raises :class:`BusUnavailable` when the stream cannot be reached.
        """
        ...

    async def publish_many(
        self, events: Sequence[BaseEvent], *, timeout: float = 5.0
    ) -> list[PublishAck]:
        """Append several events with pipelined acks (order of the list is kept)."""
        ...

    async def publish_raw(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Publish bytes that are not an event (dead letters), best effort."""
        ...

    async def consumer(self, durable: str, *, start_sequence: int = 1) -> Consumer:
        """A durable pull consumer over the whole stream, with explicit acks.

        ``start_sequence`` applies only when the consumer does not exist yet.
        """
        ...

    async def delete_consumer(self, durable: str) -> None: ...

    async def last_sequence(self) -> int:
        """Sequence number of the newest event in the stream (0 when empty)."""
        ...

    def read(
        self,
        start_sequence: int = 1,
        *,
        stop_at_end: bool = True,
        subjects: Sequence[str] | None = None,
    ) -> AsyncIterator[tuple[int, BaseEvent | None, bytes]]:
        """Read the stream in order from ``start_sequence`` without a durable consumer.

        Yields ``(sequence, event or None when undecodable, raw bytes)``. With
        ``stop_at_end`` the iterator ends at the sequence that was last when it started.
        ``subjects``: only events on these subjects (default: every event subject).
        """
        ...

    def subscribe(self, subjects: Sequence[str] = ("promptlab.>",)) -> AsyncIterator[BaseEvent]:
        """Live events from now on (no history, no acks): for watchers like the TUI."""
        ...

    async def kv_put(self, bucket: str, key: str, value: bytes) -> int:
        """Store a value; returns its revision."""
        ...

    async def kv_get(self, bucket: str, key: str) -> KVEntry | None: ...

    async def kv_delete(self, bucket: str, key: str) -> None:
        """Delete a key (watchers see an entry with ``value=None``)."""
        ...

    async def kv_keys(self, bucket: str) -> list[str]: ...

    def kv_watch(self, bucket: str) -> AsyncIterator[KVEntry]:
        """Current values of every key first, then each update as it happens."""
        ...


@runtime_checkable
class StreamStats(Protocol):
    """What operators' metrics ask the stream (both buses implement it)."""

    async def consumer_pending(self, durable: str) -> int | None:
        """Events a durable has not acknowledged yet (None when it does not exist)."""
        ...

    async def subject_count(self, subject: str) -> int:
        """Messages stored in the stream on exactly ``subject``."""
        ...
