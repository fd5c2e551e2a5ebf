"""Fast reading of a JetStream stream: a raw-subscription client and a pipelined puller.

nats-py builds a ``Msg`` (and, for JetStream, a metadata object) per message and waits
for each fetch with its own timer; that capped a replay near 9,000 events/s. The
pieces here hand each message's reply subject and payload to a plain function and keep
the next pull request waiting on the server, so a reader is limited by its own work.
:func:`events.jetstream_consumers.read` (``JetStreamBus.read``) uses them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from promptlab.events.bus import BusError, BusUnavailable
from promptlab.events.subjects import STREAM_NAME

_WHITESPACE = re.compile(r"\s")

RawHandler = Callable[[bytes, bytes, "str | None"], None]
"""``handler(reply subject, payload, status code or None)`` of a raw subscription."""


@dataclass(frozen=True)
class FastReadStats:
    """What the fast read path did on one connection (:attr:`JetStreamBus.fast_reads`)."""

    deliveries: int
    """Messages handed straight to a raw handler; stays 0 on a nats-py that no longer
    calls the ``_process_msg`` override (reads then take the slower ordinary path)."""
    open_subscriptions: int
    """Raw subscriptions open now: 0 whenever no read is running."""


class RawClient(Client):
    """nats-py's client, with two shortcuts for the hot read path.

    * A *raw* subscription (:meth:`subscribe_raw`) hands each message's reply subject,
      payload and status straight to a plain function: no ``Msg`` object, no header
      parsing, no hop through the subscription's queue and task. Replay reads every
      event of the stream this way; parsing headers it never looks at cost more than
      decoding the event.
    * Headers of every other message are parsed by a faster equivalent of nats-py's
      ``_parse_header_lines`` (same result: ``tests/events/test_jetstream_read.py``).

    Both lean on nats-py internals (``_process_msg``, ``_parse_header_lines``). If a
    nats-py release renames them, the overrides are simply never called: a raw
    subscription then receives its messages through its ordinary callback (slower, same
    result), and headers are parsed by nats-py itself. :attr:`raw_deliveries` counts the
    messages the override delivered, so ``tests/events/test_jetstream_read.py`` fails on
    a nats-py whose internals no longer call it (the speed would be lost silently).
    """

    def __init__(self) -> None:
        super().__init__()
        self._raw_handlers: dict[int, RawHandler] = {}
        self.raw_deliveries = 0
        """Messages handed to a raw handler by the ``_process_msg`` override."""

    @property
    def fast_reads(self) -> FastReadStats:
        """Deliveries so far and raw subscriptions open now."""
        return FastReadStats(self.raw_deliveries, len(self._raw_handlers))

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> Subscription:
        async def fallback(msg: Msg) -> None:
            status = None
            if not msg.data and msg.headers:
                status = msg.headers.get("Status")
            handler(msg.reply.encode(), msg.data, status)

        sub = await self.subscribe(subject, cb=fallback)
        self._raw_handlers[sub._id] = handler
        return sub

    async def unsubscribe_raw(self, sub: Subscription) -> None:
        self._raw_handlers.pop(sub._id, None)
        await sub.unsubscribe()

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        handler = self._raw_handlers.get(sid)
        if handler is None:
            await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            return
        self.raw_deliveries += 1
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        # "NATS/1.0 404 No Messages\r\n...": a status line instead of plain headers.
        status = None
        if not data and headers and headers[8:9] == b" ":
            code = headers[9:12]
            status = code.decode() if code.isdigit() else None
        handler(bytes(reply), data, status)

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            try:
                key = name.strip().decode("ascii")
            except UnicodeDecodeError:
                continue
            if _WHITESPACE.search(key) is not None:
                continue  # header names are tokens: whitespace inside is invalid
            out[key] = value.strip().decode("utf-8", "replace")
        return out


READ_BATCH = 2_000
"""Messages per pull request of :meth:`JetStreamBus.read` (two are kept in flight)."""

_REQUEST_ENDED = frozenset({"404", "408", "409"})
"""Statuses that merely end a pull request: no messages, expired, interrupted (the
consumer's leader changed or it hit a limit); the reader simply asks again."""

_JS_API = "$JS.API"
"""JetStream API prefix of ``nc.jetstream()`` without a domain: where pull requests go."""


def ack_fields(reply: bytes) -> tuple[int, int, int]:
    """``(stream sequence, times delivered, pending)`` from a JetStream reply subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` (v1) or
    ``$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>...`` (v2, 12+
    tokens): the fields nats-py's ``Msg.metadata`` reads, without building its objects
    and timestamp for every message.
    """
    tokens = reply.split(b".")
    n = len(tokens)
    if n >= 9 and tokens[0] == b"$JS" and tokens[1] == b"ACK":
        if n == 9:
            return int(tokens[5]), int(tokens[4]), int(tokens[8])
        if n >= 11:
            return int(tokens[7]), int(tokens[6]), int(tokens[10])
    raise BusError(f"not a JetStream delivery (reply subject {reply!r})")


class PullReader:
    """Pulls an ephemeral consumer in large batches through a raw subscription.

    nats-py's ``PullSubscription.fetch`` waits for every message with its own timer
    task and builds a metadata object per message, which capped a replay near 9,000
    events/s. Here each message only lands in a buffer as ``(reply subject, payload)``,
    and the next pull request goes out while the previous batch is still being read, so
    the server streams without waiting for the reader. At most ``2 * batch`` messages
    are requested ahead of the reader: memory stays bounded when the reader is slow.

    Pull requests are served in order, so the count of what each still owes is exact;
    if a request's end is ever missed, :meth:`take` times out after its expiry and asks
    again (nothing is lost: the consumer's cursor is on the server).
    """

    def __init__(
        self, nc: RawClient, consumer: str, *, batch: int, expires_s: float, no_wait: bool
    ) -> None:
        self._nc = nc
        self._next_subject = f"{_JS_API}.CONSUMER.MSG.NEXT.{STREAM_NAME}.{consumer}"
        self._batch = batch
        self._expires_s = expires_s
        # no_wait: the server answers at once with what it has (then "404 no messages");
        # otherwise a request waits up to expires_s for new messages (then "408").
        self._request_body = (
            b'{"batch":%d,"no_wait":true}' % batch
            if no_wait
            else b'{"batch":%d,"expires":%d}' % (batch, int(expires_s * 1e9))
        )
        self._sub: Subscription | None = None
        self._buffer: list[tuple[bytes, bytes]] = []
        self._owed: collections.deque[int] = collections.deque()
        """Messages still due for each outstanding pull request, oldest first."""
        self._wakeup = asyncio.Event()
        self.ended = 0
        """Pull requests that ended with a status (no messages, expired, ...)."""
        self.status: str | None = None
        """The status that ended the last of them."""

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe_raw(self._inbox, self._on_msg)

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._nc.unsubscribe_raw(self._sub)

    def _on_msg(self, reply: bytes, data: bytes, status: str | None) -> None:
        owed = self._owed
        if status is None:
            self._buffer.append((reply, data))
            if owed:
                owed[0] -= 1
                if owed[0] <= 0:
                    owed.popleft()
        elif status == "100":
            return  # an idle heartbeat (not requested, but harmless)
        else:
            # 404 no messages, 408 expired, 409 interrupted, 503 no consumer...: the
            # oldest request ends.
            if owed:
                owed.popleft()
            self.ended += 1
            self.status = status
        self._wakeup.set()

    async def _request(self) -> None:
        await self._nc.publish(self._next_subject, self._request_body, reply=self._inbox)
        self._owed.append(self._batch)

    async def take(self) -> list[tuple[bytes, bytes]]:
        """``(reply subject, payload)`` of the messages received since the last call;
        waits for at least one, or for the end of a request ([] then)."""
        ended = self.ended
        while True:
            if sum(self._owed) + len(self._buffer) < 2 * self._batch:
                await self._request()
            if self._buffer:
                msgs, self._buffer = self._buffer, []
                return msgs
            if self.ended != ended:
                if self.status not in _REQUEST_ENDED:
                    # What nats-py's fetch raises too (no consumer, bad request, ...).
                    raise BusUnavailable(f"pull request answered with status {self.status}")
                return []
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), self._expires_s + 1.0)
            except TimeoutError:
                self._owed.clear()  # a request's end went missing: ask afresh
                return []
