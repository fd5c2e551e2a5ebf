"""JetStreamBus: the EventBus protocol on NATS JetStream (nats-py).

Here: the nats-py connection (lifecycle, reconnects), the one file-backed stream
``PROMPTLAB`` (created or updated at start, and again after a reconnect in case the
server came back without its store) and publishing, with ``Nats-Msg-Id`` = ``event_id``
so a re-publish inside the duplicate window is dropped (what makes the outbox safe).
Consuming and reading: :mod:`events.jetstream_consumers`; KV: :mod:`events.jetstream_kv`.
nats-py errors never leave the bus (:mod:`events.jetstream_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from promptlab.events import jetstream_consumers as consumers
from promptlab.events.bus import BusError, BusUnavailable, KVEntry, PublishAck
from promptlab.events.config import NatsSettings
from promptlab.events.credentials import connect_options, redact_url
from promptlab.events.embedded import recorded_url
from promptlab.events.jetstream_consumers import JetStreamConsumer
from promptlab.events.jetstream_errors import refused_login, translate
from promptlab.events.jetstream_kv import JetStreamBucket
from promptlab.events.memory import DEFAULT_BUCKETS
from promptlab.events.models import BaseEvent, encode
from promptlab.events.outage import connect_cause
from promptlab.events.pull import FastReadStats, RawClient
from promptlab.events.subjects import STREAM_NAME, STREAM_SUBJECTS, Header

log = logging.getLogger(__name__)

RECONNECT_WAIT_S = 0.25
"""Pause between the client's reconnection attempts once connected."""

# Plain strings: an Enum member's ``.value`` is a descriptor lookup, paid per event.
_MSG_ID = Header.MSG_ID.value
_EVENT_TYPE = Header.EVENT_TYPE.value
_SCHEMA_VERSION = Header.SCHEMA_VERSION.value


def _subject(kind: type[BaseEvent]) -> str:
    """The subject events of ``kind`` are published on (looked up once per type)."""
    return kind.nats_subject.value


class JetStreamBus:
    """The production event bus.

    ``JetStreamBus(settings, url=...)``: ``url`` overrides ``settings.url`` and is needed
    when that is ``"embedded"`` (see :func:`events.embedded.resolve_nats_url`).
    """

    def __init__(
        self,
        settings: NatsSettings | None = None,
        *,
        url: str | None = None,
        ack_wait_s: float = 30.0,
        max_ack_pending: int = 20_000,
        buckets: Iterable[str] = DEFAULT_BUCKETS,
        name: str = "promptlab",
    ) -> None:
        self.settings = settings or NatsSettings()
        url = url or self.settings.url
        if url.strip().lower() == "embedded":
            raise BusError(
                'nats.url is "embedded": start it first with events.embedded.resolve_nats_url() '
                "and pass the URL it returns"
            )
        self.url = url
        self.ack_wait_s = ack_wait_s
        self.max_ack_pending = max_ack_pending
        self.buckets = tuple(str(b) for b in buckets)
        self.name = name
        self._nc: RawClient | None = None
        self._js: JetStreamContext | None = None
        self._kv: dict[str, JetStreamBucket] = {}
        self._reensure: asyncio.Task[None] | None = None
        self._disconnected = asyncio.Event()
        self._connect_error: BaseException | None = None
        self._down_since: float | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up (False while reconnecting)."""
        return self._nc is not None and self._nc.is_connected

    @property
    def fast_reads(self) -> FastReadStats:
        """What :meth:`read`'s fast path (:mod:`events.pull`) did on this connection."""
        return self._nc.fast_reads if self._nc is not None else FastReadStats(0, 0)

    async def start(self) -> None:
        """Connect, then create or update the stream and KV buckets. Idempotent.

        Raises :class:`BusUnavailable` when no server answers within
        ``settings.connect_timeout_s``. Once connected, the client reconnects forever.
        """
        if self._nc is not None and not self._nc.is_closed:
            return
        nc = RawClient()
        timeout = self.settings.connect_timeout_s
        embedded = self.url == recorded_url(self.settings.data_dir)
        options = connect_options(self.settings, embedded=embedded)
        self._connect_error = None
        try:
            # nats-py retries the first connect forever when reconnects are unlimited;
            # the outer timeout makes a down server an error the caller can see.
            await asyncio.wait_for(
                nc.connect(
                    servers=[u.strip() for u in self.url.split(",") if u.strip()],
                    name=self.name,
                    connect_timeout=max(1, int(timeout)),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=RECONNECT_WAIT_S,  # type: ignore[arg-type]
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    **options,
                ),
                timeout=timeout,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            cause = connect_cause(self._connect_error or exc, timeout)
            raise BusUnavailable(f"cannot connect to NATS at {self._safe_url()}: {cause}") from exc
        self._nc = nc
        self._disconnected.clear()
        self._js = nc.jetstream(timeout=max(timeout, 5.0))
        await self._ensure_stream_and_buckets()

    async def close(self) -> None:
        """Flush what is buffered and close the connection."""
        nc, self._nc = self._nc, None
        self._js = None
        self._disconnected.set()
        self._kv.clear()
        if self._reensure is not None:
            self._reensure.cancel()
            self._reensure = None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.close()

    def _safe_url(self) -> str:
        # Never log credentials embedded in a URL (nats://user:pass@host).
        return redact_url(self.url)

    async def _on_error(self, exc: Exception) -> None:
        # While connecting, the client retries and only the outer timeout ends it: keep
        # the real cause (connection refused, unknown host) to say instead of a timeout.
        # A refused login is followed by the server closing the socket: the login, not
        # the reset after it, is the cause.
        if not refused_login(self._connect_error):
            self._connect_error = exc
        log.debug("NATS client error: %r", exc)

    async def _on_disconnected(self) -> None:
        self._disconnected.set()
        if self._nc is None or self._nc.is_closed:
            return  # our own close()
        if self._down_since is None:  # one line per outage, however often it retries
            self._down_since = time.monotonic()
            log.warning(
                "NATS disconnected from %s; reconnecting every %gs, events go to the outbox",
                self._safe_url(), RECONNECT_WAIT_S,
            )  # fmt: skip

    async def _on_reconnected(self) -> None:
        down = time.monotonic() - self._down_since if self._down_since is not None else 0.0
        self._down_since = None
        log.warning("NATS reconnected to %s after %.0fs", self._safe_url(), down)
        self._disconnected.clear()
        # A server that came back without its store has no stream: recreate it, in the
        # background because this callback runs inside the client's reading task.
        self._reensure = asyncio.get_running_loop().create_task(self._reensure_quietly())

    async def _reensure_quietly(self) -> None:
        try:
            await self._ensure_stream_and_buckets()
        except BusError as exc:
            log.warning("could not re-check the stream after reconnect: %s", exc)

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise BusUnavailable("JetStream bus is not started")
        return self._js

    async def _ensure_stream_and_buckets(self) -> None:
        js = self._jetstream()
        s = self.settings
        config = StreamConfig(
            name=STREAM_NAME,
            subjects=list(STREAM_SUBJECTS),
            storage=StorageType.FILE,
            duplicate_window=s.duplicate_window_s,
            num_replicas=s.stream_replicas,
            max_age=s.stream_max_age_days * 86_400.0,
            max_bytes=s.stream_max_bytes or -1,
            allow_direct=True,
        )
        with translate("create stream"):
            try:
                await js.stream_info(STREAM_NAME)
            except nats.js.errors.NotFoundError:
                await js.add_stream(config)
            else:
                await js.update_stream(config)
            for bucket in self.buckets:
                self._kv[bucket] = await JetStreamBucket.open(js, bucket, s.stream_replicas)

    # ------------------------------------------------------------------ publishing

    def _connected_js(self, action: str) -> JetStreamContext:
        js = self._jetstream()
        if not self.connected:
            # Fail fast: a publish during a reconnect would sit in the client's buffer.
            raise BusUnavailable(f"{action}: not connected to NATS")
        return js

    @staticmethod
    def _headers(event: BaseEvent) -> dict[str, str]:
        return {
            _MSG_ID: event.event_id,
            _EVENT_TYPE: str(getattr(event, "type", "")),
            _SCHEMA_VERSION: str(event.schema_version),
        }

    async def publish(self, event: BaseEvent, *, timeout: float = 5.0) -> PublishAck:
        """Append one event (``Nats-Msg-Id`` = ``event_id``) and wait for the ack."""
        js = self._connected_js("publish")
        with translate("publish"):
            ack = await js.publish(
                event.nats_subject.value,
                encode(event),
                timeout=timeout,
                headers=self._headers(event),
            )
        return PublishAck(sequence=ack.seq, duplicate=bool(ack.duplicate))

    async def publish_many(
        self, events: Sequence[BaseEvent], *, timeout: float = 5.0
    ) -> list[PublishAck]:
        """Send every event, then gather the acks (one round trip for the whole batch).

        Raises on the first failed ack; events that were stored anyway are deduplicated
        when the caller publishes the batch again.
        """
        if not events:
            return []
        js = self._connected_js("publish")
        futures: list[asyncio.Future[Any]] = []
        gathered: asyncio.Future[Any] | None = None
        lost: asyncio.Future[Any] = asyncio.ensure_future(self._disconnected.wait())
        try:
            with translate("publish"):
                # wait_stall=None: with a free pending slot publish_async never yields, so
                # the client's flusher sends the whole batch in one write, not one per event.
                async with asyncio.timeout(timeout):
                    headers = self._headers
                    for event in events:
                        futures.append(
                            await js.publish_async(
                                _subject(type(event)),
                                encode(event),
                                wait_stall=None,
                                headers=headers(event),
                            )
                        )
                gathered = asyncio.gather(*futures, return_exceptions=True)
                # A dropped connection fails the batch at once instead of after `timeout`.
                await asyncio.wait(
                    [gathered, lost], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not gathered.done():
                    why = "connection lost" if lost.done() else f"no ack within {timeout}s"
                    raise BusUnavailable(f"publish: {why} ({len(futures)} events)")
                acks: list[Any] = gathered.result()
                for ack in acks:
                    if isinstance(ack, BaseException):
                        raise ack
        finally:
            lost.cancel()
            if gathered is not None and not gathered.done():
                gathered.cancel()  # cancels every pending ack future
            for f in futures:
                if not f.done():
                    f.cancel()
        return [PublishAck(sequence=a.seq, duplicate=bool(a.duplicate)) for a in acks]

    async def publish_raw(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Publish bytes that are not an event (dead letters); waits for the stream's ack
        when the subject is in the stream."""
        js = self._connected_js("publish")
        with translate("publish"):
            await js.publish(subject, data, headers=dict(headers) if headers else None)

    # ------------------------------------------------------------------ consuming

    async def consumer(self, durable: str, *, start_sequence: int = 1) -> JetStreamConsumer:
        """Open (creating when absent) a durable pull consumer with explicit acks."""
        return await consumers.open_consumer(
            self._jetstream(),
            durable,
            start_sequence=start_sequence,
            ack_wait_s=self.ack_wait_s,
            max_ack_pending=self.max_ack_pending,
        )

    async def delete_consumer(self, durable: str) -> None:
        """Delete a durable and its position (no error when it does not exist)."""
        await consumers.delete_consumer(self._jetstream(), durable)

    async def last_sequence(self) -> int:
        """Sequence of the newest message in the stream (0 when empty)."""
        return await consumers.last_sequence(self._jetstream())

    async def consumer_pending(self, durable: str) -> int | None:
        """Events a durable has not acknowledged yet (None when it does not exist)."""
        return await consumers.consumer_pending(self._jetstream(), durable)

    async def subject_count(self, subject: str) -> int:
        """Messages stored in the stream on exactly ``subject``."""
        return await consumers.subject_count(self._jetstream(), subject)

    async def read(
        self,
        start_sequence: int = 1,
        *,
        stop_at_end: bool = True,
        subjects: Sequence[str] | None = None,
    ) -> AsyncIterator[tuple[int, BaseEvent | None, bytes]]:
        """Read events in order through an ephemeral consumer without acks."""
        js = self._jetstream()
        assert isinstance(self._nc, RawClient)
        rows = consumers.read(
            js, self._nc, start_sequence, stop_at_end=stop_at_end, subjects=subjects
        )
        async with contextlib.aclosing(rows):
            async for row in rows:
                yield row

    async def subscribe(
        self, subjects: Sequence[str] = ("promptlab.>",)
    ) -> AsyncIterator[BaseEvent]:
        """Live events (no history, no acks); a watcher 10,000 behind loses the oldest."""
        if self._nc is None:
            raise BusUnavailable("JetStream bus is not started")
        events = consumers.subscribe(self._nc, subjects)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    # ------------------------------------------------------------------ key-value

    def _bucket(self, bucket: str) -> JetStreamBucket:
        self._jetstream()
        try:
            return self._kv[str(bucket)]
        except KeyError:
            raise BusError(f"unknown KV bucket {bucket!r}") from None

    async def kv_put(self, bucket: str, key: str, value: bytes) -> int:
        """Store ``value`` under ``key``; returns the new revision."""
        return await self._bucket(bucket).put(key, value)

    async def kv_delete(self, bucket: str, key: str) -> None:
        """Delete a key (watchers see an entry with ``value=None``)."""
        await self._bucket(bucket).delete(key)

    async def kv_get(self, bucket: str, key: str) -> KVEntry | None:
        """The current entry, or None when absent or deleted."""
        return await self._bucket(bucket).get(key)

    async def kv_keys(self, bucket: str) -> list[str]:
        """Keys that currently hold a value, sorted."""
        return await self._bucket(bucket).keys()

    async def kv_watch(self, bucket: str) -> AsyncIterator[KVEntry]:
        """Current values first, then every put and delete (``value=None``) as it happens."""
        entries = self._bucket(bucket).watch()
        async with contextlib.aclosing(entries):
            async for entry in entries:
                yield entry
