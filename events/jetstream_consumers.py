"""Reading the PROMPTLAB stream: durable pull consumers, ordered reads, live subscriptions.

* Durable pull consumers with explicit acks, filtered to the event subjects
  (:data:`events.subjects.CONSUMED_SUBJECTS`, i.e. no dead letters): the learner's.
* Ordered reads (replay, followers) through an ephemeral consumer without acks, on the
  fast path of :mod:`events.pull`.
* Live events through core NATS subscriptions (the TUI): no history, no acks.

Plain functions over the JetStream context and connection that
:class:`events.jetstream.JetStreamBus` owns; nats-py errors are translated here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from promptlab.events.bus import BusUnavailable, Delivery
from promptlab.events.jetstream_errors import translate
from promptlab.events.models import BaseEvent, EventDecodeError, decode
from promptlab.events.pull import READ_BATCH, PullReader, RawClient, ack_fields
from promptlab.events.subjects import CONSUMED_SUBJECTS, STREAM_NAME


def _delivery(msg: Msg) -> Delivery:
    sequence, num_delivered, _pending = ack_fields(msg.reply.encode())
    try:
        event: BaseEvent | None = decode(msg.data)
        error = None
    except EventDecodeError as exc:
        event, error = None, str(exc)

    async def ack() -> None:
        with translate("ack"):
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
            with translate(f"fetch from consumer {self.durable!r}"):
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


def consumer_config(
    durable: str | None,
    start_sequence: int,
    *,
    ack_wait_s: float | None,
    max_ack_pending: int | None,
    **extra: Any,
) -> ConsumerConfig:
    """A consumer of the event subjects from ``start_sequence`` (1 or less: from the start)."""
    start = max(start_sequence, 1)
    return ConsumerConfig(
        durable_name=durable,
        name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start > 1 else DeliverPolicy.ALL,
        opt_start_seq=start if start > 1 else None,
        filter_subjects=list(CONSUMED_SUBJECTS),
        ack_wait=ack_wait_s,
        max_ack_pending=max_ack_pending,
        **extra,
    )


async def open_consumer(
    js: JetStreamContext,
    durable: str,
    *,
    start_sequence: int,
    ack_wait_s: float,
    max_ack_pending: int,
) -> JetStreamConsumer:
    """Open (creating when absent) a durable pull consumer with explicit acks."""
    with translate(f"open consumer {durable!r}"):
        try:
            info = await js.consumer_info(STREAM_NAME, durable)
        except nats.js.errors.NotFoundError:
            config = consumer_config(
                durable, start_sequence, ack_wait_s=ack_wait_s, max_ack_pending=max_ack_pending
            )
            await js.add_consumer(STREAM_NAME, config)
        else:
            if sorted(info.config.filter_subjects or []) != sorted(CONSUMED_SUBJECTS):
                # New event subjects since the durable was made: widen its filter.
                config = info.config
                config.filter_subjects = list(CONSUMED_SUBJECTS)
                config.filter_subject = None
                await js.add_consumer(STREAM_NAME, config)
        sub = await js.pull_subscribe_bind(durable=durable, stream=STREAM_NAME)
    return JetStreamConsumer(durable, sub)


async def delete_consumer(js: JetStreamContext, durable: str) -> None:
    """Delete a durable and its position (no error when it does not exist)."""
    with (
        translate(f"delete consumer {durable!r}"),
        contextlib.suppress(nats.js.errors.NotFoundError),
    ):
        await js.delete_consumer(STREAM_NAME, durable)


async def last_sequence(js: JetStreamContext) -> int:
    """Sequence of the newest message in the stream (0 when empty)."""
    with translate("stream info"):
        info = await js.stream_info(STREAM_NAME)
    return int(info.state.last_seq or 0)


async def consumer_pending(js: JetStreamContext, durable: str) -> int | None:
    """Events a durable has not acknowledged yet (None when it does not exist)."""
    with translate(f"consumer info {durable!r}"):
        try:
            info = await js.consumer_info(STREAM_NAME, durable)
        except nats.js.errors.NotFoundError:
            return None
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


async def subject_count(js: JetStreamContext, subject: str) -> int:
    """Messages stored in the stream on exactly ``subject``."""
    with translate("stream info"):
        info = await js.stream_info(STREAM_NAME, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def read(
    js: JetStreamContext,
    nc: RawClient,
    start_sequence: int,
    *,
    stop_at_end: bool,
    subjects: Sequence[str] | None,
) -> AsyncGenerator[tuple[int, BaseEvent | None, bytes], None]:
    """Read events in order through an ephemeral consumer without acks.

    Pulled in batches of :data:`READ_BATCH` with the next request already waiting
    on the server (:class:`PullReader`); the sequence comes from the reply subject.
    """
    end = await last_sequence(js) if stop_at_end else 0
    if stop_at_end and end < max(start_sequence, 1):
        return
    config = consumer_config(
        None,
        start_sequence,
        ack_wait_s=None,
        max_ack_pending=None,
        inactive_threshold=30.0,
        mem_storage=True,
        num_replicas=1,
    )
    config.ack_policy = AckPolicy.NONE
    if subjects:
        config.filter_subjects = [str(subject) for subject in subjects]
    with translate("read stream"):
        info = await js.add_consumer(STREAM_NAME, config)
    reader = PullReader(nc, info.name, batch=READ_BATCH, expires_s=1.0, no_wait=stop_at_end)
    try:
        if stop_at_end and not info.num_pending:
            return  # nothing but dead letters (or nothing at all) from start_sequence
        with translate("read stream"):
            await reader.start()
        taken = 0
        while True:
            with translate("read stream"):
                msgs = await reader.take()
            if not msgs:
                if stop_at_end:
                    with translate("read stream"):
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


async def subscribe(nc: RawClient, subjects: Sequence[str]) -> AsyncGenerator[BaseEvent, None]:
    """Live events through core NATS subscriptions (no history, no acks).

    A watcher that falls more than 10,000 events behind loses the oldest ones rather
    than slowing the connection down.
    """
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
        with translate("subscribe"):
            for subject in subjects:
                subs.append(await nc.subscribe(str(subject), cb=on_msg))
            await nc.flush()
        while True:
            yield await queue.get()
    finally:
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
