"""JetStreamBus: the EventBus protocol on NATS JetStream (nats-py).

* One file-backed stream, ``PROMPTLAB``, created or updated at start (and again after a
  reconnect, in case the server came back without its store).
* Every event is published with ``Nats-Msg-Id`` = ``event_id``, so a re-publish inside the
  duplicate window is dropped by the server: that is what makes the outbox safe.
* Durable pull consumers with explicit acks, filtered to the event subjects
  (:data:`events.subjects.CONSUMED_SUBJECTS`, i.e. no dead letters).
* KV buckets ``promptlab_routing`` and ``promptlab_stats`` for snapshots.

nats-py errors never leave this module: they become :class:`BusUnavailable` (retry
later) or :class:`BusError`.

Why one module of this size: one class implements the :class:`~events.bus.EventBus`
protocol over one nats-py connection (lifecycle, publishing, consuming, KV), whose
state every part shares; the fast read path is in :mod:`events.pull`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from promptlab.events.bus import BusError, BusUnavailable, Delivery, KVEntry, PublishAck
from promptlab.events.config import NatsSettings
from promptlab.events.credentials import connect_options, redact_url
from promptlab.events.embedded import recorded_url
from promptlab.events.memory import DEFAULT_BUCKETS
from promptlab.events.models import BaseEvent, EventDecodeError, decode, encode
from promptlab.events.outage import connect_cause
from promptlab.events.pull import READ_BATCH, PullReader, RawClient, ack_fields
from promptlab.events.subjects import (
    BUCKET_TTL_S,
    CONSUMED_SUBJECTS,
    STREAM_NAME,
    STREAM_SUBJECTS,
    Header,
)

log = logging.getLogger(__name__)

RECONNECT_WAIT_S = 0.25
"""Pause between the client's reconnection attempts once connected."""

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.NoRespondersError,
    nats.errors.FlushTimeoutError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.TooManyStalledMsgsError,
    TimeoutError,  # also nats.errors.TimeoutError
    OSError,
)


# Plain strings: an Enum member's ``.value`` is a descriptor lookup, paid per event.
_MSG_ID = Header.MSG_ID.value
_EVENT_TYPE = Header.EVENT_TYPE.value
_SCHEMA_VERSION = Header.SCHEMA_VERSION.value


@contextlib.contextmanager
def _translate(action: str) -> Iterator[None]:
    """Turn nats-py errors into BusUnavailable / BusError at the boundary."""
    try:
        yield
    except BusError:
        raise
    except _UNAVAILABLE as exc:
        raise BusUnavailable(f"{action}: NATS unavailable ({type(exc).__name__}: {exc})") from exc
    except (nats.errors.Error, nats.js.errors.Error) as exc:
        raise BusError(f"{action}: {type(exc).__name__}: {exc}") from exc


@functools.cache
def _refused_login(exc: BaseException | None) -> bool:
    return exc is not None and (
        isinstance(exc, nats.errors.AuthorizationError) or "authorization" in str(exc).lower()
    )


def _subject(kind: type[BaseEvent]) -> str:
    """The subject events of ``kind`` are published on (looked up once per type)."""
    return kind.nats_subject.value


def _delivery(msg: Msg) -> Delivery:
    sequence, num_delivered, _pending = ack_fields(msg.reply.encode())
    try:
        event: BaseEvent | None = decode(msg.data)
        error = None
    except EventDecodeError as exc:
        event, error = None, str(exc)

    async def ack() -> None:
        with _translate("ack"):
            await msg.ack()

    return Delivery(
        sequence=sequence,
        event=event,
        data=msg.data,
        num_delivered=num_delivered,
        error=error,
        _ack=ack,
    )


def _decoded(data: bytes) -> BaseEvent | None:
    try:
        return decode(data)
    except EventDecodeError:
        return None


class JetStreamConsumer:
    """A durable pull consumer bound to the PROMPTLAB stream."""

    def __init__(self, durable: str, sub: JetStreamContext.PullSubscription) -> None:
        self.durable = durable
        self._sub = sub

    async def fetch(self, batch: int = 100, timeout: float = 1.0) -> list[Delivery]:
        """Wait up to ``timeout`` seconds for up to ``batch`` messages ([] when none came)."""
        try:
            with _translate(f"fetch from consumer {self.durable!r}"):
                msgs = await self._sub.fetch(batch, timeout=timeout)
        except BusUnavailable as exc:
            # A fetch that simply saw no message is not an outage.
            if isinstance(exc.__cause__, nats.errors.TimeoutError | asyncio.TimeoutError):
                return []
            raise
        return [_delivery(m) for m in msgs]

    async def close(self) -> None:
        """Stop pulling; the durable and its position stay on the server."""
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()


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
        self._kv: dict[str, KeyValue] = {}
        self._reensure: asyncio.Task[None] | None = None
        self._disconnected = asyncio.Event()
        self._connect_error: BaseException | None = None
        self._down_since: float | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up (False while reconnecting)."""
        return self._nc is not None and self._nc.is_connected

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
        if not _refused_login(self._connect_error):
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
        with _translate("create stream"):
            try:
                await js.stream_info(STREAM_NAME)
            except nats.js.errors.NotFoundError:
                await js.add_stream(config)
            else:
                await js.update_stream(config)
            for bucket in self.buckets:
                try:
                    kv = await js.key_value(bucket)
                except nats.js.errors.BucketNotFoundError:
                    kv = await js.create_key_value(
                        KeyValueConfig(
                            bucket=bucket,
                            history=1,
                            ttl=BUCKET_TTL_S.get(bucket),
                            storage=StorageType.FILE,
                            replicas=s.stream_replicas,
                        )
                    )
                self._kv[bucket] = kv

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
        with _translate("publish"):
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
            with _translate("publish"):
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
        with _translate("publish"):
            await js.publish(subject, data, headers=dict(headers) if headers else None)

    # ------------------------------------------------------------------ consuming

    def _consumer_config(
        self, durable: str | None, start_sequence: int, **extra: Any
    ) -> ConsumerConfig:
        start = max(start_sequence, 1)
        return ConsumerConfig(
            durable_name=durable,
            name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start > 1 else DeliverPolicy.ALL,
            opt_start_seq=start if start > 1 else None,
            filter_subjects=list(CONSUMED_SUBJECTS),
            ack_wait=self.ack_wait_s,
            max_ack_pending=self.max_ack_pending,
            **extra,
        )

    async def consumer(self, durable: str, *, start_sequence: int = 1) -> JetStreamConsumer:
        """Open (creating when absent) a durable pull consumer with explicit acks."""
        js = self._jetstream()
        with _translate(f"open consumer {durable!r}"):
            try:
                info = await js.consumer_info(STREAM_NAME, durable)
            except nats.js.errors.NotFoundError:
                await js.add_consumer(STREAM_NAME, self._consumer_config(durable, start_sequence))
            else:
                if sorted(info.config.filter_subjects or []) != sorted(CONSUMED_SUBJECTS):
                    # New event subjects since the durable was made: widen its filter.
                    config = info.config
                    config.filter_subjects = list(CONSUMED_SUBJECTS)
                    config.filter_subject = None
                    await js.add_consumer(STREAM_NAME, config)
            sub = await js.pull_subscribe_bind(durable=durable, stream=STREAM_NAME)
        return JetStreamConsumer(durable, sub)

    async def delete_consumer(self, durable: str) -> None:
        """Delete a durable and its position (no error when it does not exist)."""
        js = self._jetstream()
        with (
            _translate(f"delete consumer {durable!r}"),
            contextlib.suppress(nats.js.errors.NotFoundError),
        ):
            await js.delete_consumer(STREAM_NAME, durable)

    async def last_sequence(self) -> int:
        """Sequence of the newest message in the stream (0 when empty)."""
        js = self._jetstream()
        with _translate("stream info"):
            info = await js.stream_info(STREAM_NAME)
        return int(info.state.last_seq or 0)

    async def consumer_pending(self, durable: str) -> int | None:
        """Events a durable has not acknowledged yet (None when it does not exist)."""
        js = self._jetstream()
        with _translate(f"consumer info {durable!r}"):
            try:
                info = await js.consumer_info(STREAM_NAME, durable)
            except nats.js.errors.NotFoundError:
                return None
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def subject_count(self, subject: str) -> int:
        """Messages stored in the stream on exactly ``subject``."""
        js = self._jetstream()
        with _translate("stream info"):
            info = await js.stream_info(STREAM_NAME, subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))

    async def read(
        self,
        start_sequence: int = 1,
        *,
        stop_at_end: bool = True,
        subjects: Sequence[str] | None = None,
    ) -> AsyncIterator[tuple[int, BaseEvent | None, bytes]]:
        """Read events in order through an ephemeral consumer without acks.

        Pulled in batches of :data:`READ_BATCH` with the next request already waiting
        on the server (:class:`PullReader`); the sequence comes from the reply subject.
        """
        js = self._jetstream()
        end = await self.last_sequence() if stop_at_end else 0
        if stop_at_end and end < max(start_sequence, 1):
            return
        config = self._consumer_config(
            None, start_sequence, inactive_threshold=30.0, mem_storage=True, num_replicas=1
        )
        config.ack_policy = AckPolicy.NONE
        if subjects:
            config.filter_subjects = [str(subject) for subject in subjects]
        config.ack_wait = None
        config.max_ack_pending = None
        assert isinstance(self._nc, RawClient)
        with _translate("read stream"):
            info = await js.add_consumer(STREAM_NAME, config)
        reader = PullReader(
            self._nc, info.name, batch=READ_BATCH, expires_s=1.0, no_wait=stop_at_end
        )
        try:
            if stop_at_end and not info.num_pending:
                return  # nothing but dead letters (or nothing at all) from start_sequence
            with _translate("read stream"):
                await reader.start()
            taken = 0
            while True:
                with _translate("read stream"):
                    msgs = await reader.take()
                if not msgs:
                    if stop_at_end:
                        with _translate("read stream"):
                            now = await js.consumer_info(STREAM_NAME, info.name)
                        # Done when nothing is left on the server and every message it
                        # delivered has been taken: a request's end status can overtake
                        # the last messages on nats-py's callback path.
                        delivered = now.delivered.consumer_seq if now.delivered else 0
                        if not now.num_pending and taken >= (delivered or 0):
                            return
                        await asyncio.sleep(0.05)  # not served yet: do not spin
                    continue
                taken += len(msgs)
                for reply, data in msgs:
                    seq, _delivered, pending = ack_fields(reply)
                    if stop_at_end and seq > end:
                        return
                    yield seq, _decoded(data), data
                    if stop_at_end and (seq >= end or pending == 0):
                        return
        finally:
            await reader.close()
            with contextlib.suppress(Exception):
                await js.delete_consumer(STREAM_NAME, info.name)

    async def subscribe(
        self, subjects: Sequence[str] = ("promptlab.>",)
    ) -> AsyncIterator[BaseEvent]:
        """Live events through core NATS subscriptions (no history, no acks).

        A watcher that falls more than 10,000 events behind loses the oldest ones rather
        than slowing the connection down.
        """
        if self._nc is None:
            raise BusUnavailable("JetStream bus is not started")
        queue: asyncio.Queue[BaseEvent] = asyncio.Queue(maxsize=10_000)

        async def on_msg(msg: Msg) -> None:
            event = _decoded(msg.data)
            if event is None:
                return
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

        subs = []
        try:
            with _translate("subscribe"):
                for subject in subjects:
                    subs.append(await self._nc.subscribe(str(subject), cb=on_msg))
                await self._nc.flush()
            while True:
                yield await queue.get()
        finally:
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()

    # ------------------------------------------------------------------ key-value

    def _bucket(self, bucket: str) -> KeyValue:
        self._jetstream()
        try:
            return self._kv[str(bucket)]
        except KeyError:
            raise BusError(f"unknown KV bucket {bucket!r}") from None

    async def kv_put(self, bucket: str, key: str, value: bytes) -> int:
        """Store ``value`` under ``key``; returns the new revision."""
        kv = self._bucket(bucket)
        with _translate(f"kv put {bucket}"):
            return int(await kv.put(key, value))

    async def kv_delete(self, bucket: str, key: str) -> None:
        """Delete a key (watchers see an entry with ``value=None``)."""
        kv = self._bucket(bucket)
        with _translate(f"kv delete {bucket}"):
            await kv.delete(key)

    async def kv_get(self, bucket: str, key: str) -> KVEntry | None:
        """The current entry, or None when absent or deleted."""
        kv = self._bucket(bucket)
        with _translate(f"kv get {bucket}"):
            try:
                entry = await kv.get(key)
            except nats.js.errors.KeyNotFoundError:  # includes KeyDeletedError
                return None
        if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
            return None
        return KVEntry(key=entry.key, value=entry.value, revision=int(entry.revision or 0))

    async def kv_keys(self, bucket: str) -> list[str]:
        """Keys that currently hold a value, sorted."""
        kv = self._bucket(bucket)
        with _translate(f"kv keys {bucket}"):
            try:
                return sorted(await kv.keys())
            except nats.js.errors.NoKeysError:
                return []

    async def kv_watch(self, bucket: str) -> AsyncIterator[KVEntry]:
        """Current values first, then every put and delete (``value=None``) as it happens."""
        kv = self._bucket(bucket)
        with _translate(f"kv watch {bucket}"):
            watcher = await kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # "initial values done" marker, also sent for an empty bucket
                    continue
                deleted = entry.operation in (KV_DEL, KV_PURGE)
                yield KVEntry(
                    key=entry.key,
                    value=None if deleted else (entry.value or b""),
                    revision=int(entry.revision or 0),
                )
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]  # nats-py leaves it untyped
