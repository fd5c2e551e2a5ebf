"""One contract, two buses: MemoryBus and JetStreamBus on a real nats-server.

Every test here runs once per backend; a behaviour other packages rely on must hold
for both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from polling import until

from promptlab.events.bus import BusError, BusUnavailable, Consumer, Delivery, EventBus
from promptlab.events.embedded import NatsServerProcess
from promptlab.events.memory import MemoryBus
from promptlab.events.models import BaseEvent, ExecutionCompleted, FeedbackReceived
from promptlab.events.subjects import Bucket, Subject

ACK_WAIT_S = 0.5


@pytest.fixture(params=["memory", "jetstream"])
async def bus(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[EventBus]:
    if request.param == "memory":
        bus: Any = MemoryBus(ack_wait_s=ACK_WAIT_S)
        await bus.start()
        yield bus
        await bus.close()
        return
    from promptlab.events.jetstream import JetStreamBus

    server = NatsServerProcess(tmp_path / "nats")
    server.start()
    try:
        bus = JetStreamBus(url=server.url, ack_wait_s=ACK_WAIT_S)
        await bus.start()
        yield bus
        await bus.close()
    finally:
        server.stop()


def execution(n: int = 0, **kw: Any) -> ExecutionCompleted:
    return ExecutionCompleted(
        execution_id=f"exec-{n}", model="gpt-test", provider="fake", latency_ms=float(n), **kw
    )


async def fetch_until(consumer: Consumer, count: int, within: float = 5.0) -> list[Delivery]:
    """Fetch until ``count`` deliveries arrived or ``within`` seconds passed."""
    out: list[Delivery] = []
    deadline = asyncio.get_running_loop().time() + within
    while len(out) < count and asyncio.get_running_loop().time() < deadline:
        out += await consumer.fetch(batch=count - len(out), timeout=0.2)
    return out


async def collect(aiter: AsyncIterator[Any], count: int, within: float = 5.0) -> list[Any]:
    out = []

    async def run() -> None:
        async for item in aiter:
            out.append(item)
            if len(out) >= count:
                return

    await asyncio.wait_for(run(), within)
    return out


class TestBusContract:
    async def test_is_an_event_bus(self, bus: EventBus) -> None:
        assert isinstance(bus, EventBus)
        assert bus.connected

    async def test_publish_returns_increasing_sequences(self, bus: EventBus) -> None:
        assert await bus.last_sequence() == 0
        acks = [await bus.publish(execution(i)) for i in range(3)]
        assert [a.sequence for a in acks] == [1, 2, 3]
        assert not any(a.duplicate for a in acks)
        assert await bus.last_sequence() == 3

    async def test_publish_many_keeps_order(self, bus: EventBus) -> None:
        events = [execution(i) for i in range(50)]
        acks = await bus.publish_many(events)
        assert [a.sequence for a in acks] == list(range(1, 51))
        read = [e async for _, e, _ in bus.read()]
        assert [e.event_id for e in read if e] == [e.event_id for e in events]
        assert await bus.publish_many([]) == []

    async def test_same_event_id_is_stored_once(self, bus: EventBus) -> None:
        event = execution(1)
        first = await bus.publish(event)
        again = await bus.publish(event)
        batch = await bus.publish_many([event, execution(2)])
        assert again.duplicate and again.sequence == first.sequence
        assert batch[0].duplicate and not batch[1].duplicate
        assert await bus.last_sequence() == 2

    async def test_consumer_delivers_events_with_sequence(self, bus: EventBus) -> None:
        sent = [execution(1), FeedbackReceived(execution_id="exec-1", name="thumbs_up", value=True)]
        for event in sent:
            await bus.publish(event)
        consumer = await bus.consumer("learner")
        got = await fetch_until(consumer, 2)
        assert [d.sequence for d in got] == [1, 2]
        assert [d.event for d in got] == sent
        assert all(d.num_delivered == 1 and d.error is None for d in got)
        for d in got:
            await d.ack()
        assert await consumer.fetch(timeout=0.1) == []
        await consumer.close()

    async def test_durable_consumer_resumes_after_reopen(self, bus: EventBus) -> None:
        await bus.publish_many([execution(i) for i in range(5)])
        consumer = await bus.consumer("learner")
        first = await fetch_until(consumer, 3)
        assert [d.sequence for d in first] == [1, 2, 3]
        for d in first:
            await d.ack()
        await consumer.close()

        reopened = await bus.consumer("learner", start_sequence=1)  # ignored: it exists
        rest = await fetch_until(reopened, 2)
        assert [d.sequence for d in rest] == [4, 5]
        for d in rest:
            await d.ack()
        await reopened.close()

    async def test_start_sequence_applies_to_a_new_consumer(self, bus: EventBus) -> None:
        await bus.publish_many([execution(i) for i in range(4)])
        consumer = await bus.consumer("late", start_sequence=3)
        got = await fetch_until(consumer, 2)
        assert [d.sequence for d in got] == [3, 4]
        await consumer.close()

    async def test_unacked_delivery_comes_back(self, bus: EventBus) -> None:
        await bus.publish_many([execution(1), execution(2)])
        consumer = await bus.consumer("learner")
        got = await fetch_until(consumer, 2)
        await got[1].ack()  # the first one is never acked
        again = await fetch_until(consumer, 1, within=ACK_WAIT_S * 10)
        assert [(d.sequence, d.num_delivered) for d in again] == [(1, 2)]
        assert again[0].event == got[0].event
        await again[0].ack()
        assert await consumer.fetch(timeout=ACK_WAIT_S * 2) == []
        await consumer.close()

    async def test_deleted_consumer_starts_over(self, bus: EventBus) -> None:
        await bus.publish(execution(1))
        consumer = await bus.consumer("learner")
        for d in await fetch_until(consumer, 1):
            await d.ack()
        await consumer.close()
        await bus.delete_consumer("learner")
        await bus.delete_consumer("never-existed")
        fresh = await bus.consumer("learner")
        assert [d.sequence for d in await fetch_until(fresh, 1)] == [1]
        await fresh.close()

    async def test_undecodable_payload_is_delivered_with_an_error(self, bus: EventBus) -> None:
        await bus.publish_raw(Subject.EXECUTION.value, b"{not json")
        await bus.publish(execution(1))
        consumer = await bus.consumer("learner")
        got = await fetch_until(consumer, 2)
        assert got[0].event is None and got[0].data == b"{not json" and got[0].error
        assert got[1].event is not None
        await consumer.close()

    async def test_dead_letters_are_not_consumed_again(self, bus: EventBus) -> None:
        await bus.publish_raw(
            Subject.DEAD_LETTER.value, b"garbage", {"Promptlab-Dead-Letter-Reason": "x"}
        )
        await bus.publish(execution(1))
        consumer = await bus.consumer("learner")
        got = await fetch_until(consumer, 2, within=ACK_WAIT_S / 2)
        assert [d.sequence for d in got] == [2]
        assert [s async for s, _, _ in bus.read()] == [2]
        await consumer.close()

    async def test_read_from_a_sequence(self, bus: EventBus) -> None:
        events = [execution(i) for i in range(6)]
        await bus.publish_many(events)
        rows = [row async for row in bus.read(4)]
        assert [s for s, _, _ in rows] == [4, 5, 6]
        assert [e for _, e, _ in rows] == events[3:]
        assert all(isinstance(data, bytes) for _, _, data in rows)
        assert [row async for row in bus.read(7)] == []

    async def test_read_of_an_empty_stream_ends(self, bus: EventBus) -> None:
        assert [row async for row in bus.read()] == []

    async def test_read_without_stop_follows_new_events(self, bus: EventBus) -> None:
        await bus.publish(execution(1))
        follower = bus.read(1, stop_at_end=False)
        first = await asyncio.wait_for(follower.__anext__(), 5)
        assert first[0] == 1
        await bus.publish(execution(2))
        second = await asyncio.wait_for(follower.__anext__(), 5)
        assert second[0] == 2 and isinstance(second[1], BaseEvent)
        await follower.aclose()  # type: ignore[attr-defined]

    async def test_subscribe_sees_live_events_on_its_subjects(self, bus: EventBus) -> None:
        stream = bus.subscribe([Subject.FEEDBACK.value])
        received: list[BaseEvent] = []
        got_one = asyncio.Event()

        async def watch() -> None:
            async for event in stream:
                received.append(event)
                got_one.set()

        task = asyncio.create_task(watch())
        # The subscription is live from the first iteration on: publish until it shows.
        await _until(
            got_one,
            lambda: bus.publish(FeedbackReceived(execution_id="probe", name="n", value=1.0)),
        )
        received.clear()
        await bus.publish(execution(1))  # another subject: not seen
        wanted = FeedbackReceived(execution_id="e", name="thumbs_up", value=True)
        await bus.publish(wanted)
        await until(lambda: wanted in received)
        assert all(isinstance(e, FeedbackReceived) for e in received)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def test_kv_put_get_keys(self, bus: EventBus) -> None:
        bucket = Bucket.ROUTING.value
        assert await bus.kv_keys(bucket) == []
        assert await bus.kv_get(bucket, "summarize") is None
        r1 = await bus.kv_put(bucket, "summarize", b"v1")
        r2 = await bus.kv_put(bucket, "summarize", b"v2")
        await bus.kv_put(bucket, "translate", b"t1")
        assert r2 > r1
        entry = await bus.kv_get(bucket, "summarize")
        assert entry is not None and (entry.key, entry.value, entry.revision) == (
            "summarize",
            b"v2",
            r2,
        )
        assert await bus.kv_keys(bucket) == ["summarize", "translate"]
        assert await bus.kv_keys(Bucket.STATS.value) == []
        await bus.kv_delete(bucket, "translate")  # type: ignore[attr-defined]
        assert await bus.kv_get(bucket, "translate") is None
        assert await bus.kv_keys(bucket) == ["summarize"]

    async def test_kv_unknown_bucket_is_an_error(self, bus: EventBus) -> None:
        with pytest.raises(BusError):
            await bus.kv_put("no_such_bucket", "k", b"v")

    async def test_kv_watch_yields_current_values_then_updates(self, bus: EventBus) -> None:
        bucket = Bucket.STATS.value
        await bus.kv_put(bucket, "a", b"1")
        await bus.kv_put(bucket, "b", b"2")
        await bus.kv_put(bucket, "a", b"3")
        watch = bus.kv_watch(bucket)
        current = await collect(watch, 2)
        assert sorted((e.key, e.value) for e in current) == [("a", b"3"), ("b", b"2")]
        rev = await bus.kv_put(bucket, "b", b"4")
        update = await asyncio.wait_for(watch.__anext__(), 5)
        assert (update.key, update.value, update.revision) == ("b", b"4", rev)
        await watch.aclose()  # type: ignore[attr-defined]

    async def test_kv_watch_of_an_empty_bucket_waits_for_updates(self, bus: EventBus) -> None:
        watch = bus.kv_watch(Bucket.ROUTING.value)
        nxt = asyncio.ensure_future(watch.__anext__())
        await asyncio.sleep(0.05)
        assert not nxt.done()
        await bus.kv_put(Bucket.ROUTING.value, "p", b"x")
        entry = await asyncio.wait_for(nxt, 5)
        assert (entry.key, entry.value) == ("p", b"x")
        await watch.aclose()  # type: ignore[attr-defined]

    async def test_closed_bus_refuses_publishes(self, bus: EventBus) -> None:
        await bus.close()
        assert not bus.connected
        with pytest.raises(BusUnavailable):
            await bus.publish(execution(1))
        with pytest.raises(BusUnavailable):
            await bus.publish_many([execution(2)])


async def _until(
    flag: asyncio.Event, action: Callable[[], Awaitable[Any]], within: float = 5.0
) -> None:
    """Repeat ``action`` until ``flag`` is set (bounded by ``within`` seconds)."""
    deadline = asyncio.get_running_loop().time() + within
    while not flag.is_set():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await action()
        try:
            await asyncio.wait_for(flag.wait(), 0.05)
        except TimeoutError:
            pass
