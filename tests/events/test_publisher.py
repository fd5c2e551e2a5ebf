"""EventPublisher: never blocks the caller, loses nothing, duplicates nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from polling import until

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.memory import MemoryBus
from promptlab.events.models import ExecutionCompleted
from promptlab.events.publisher import EventPublisher


def execution(n: int) -> ExecutionCompleted:
    return ExecutionCompleted(execution_id=f"exec-{n}", model="m", provider="p", latency_ms=1.0)


async def stream_ids(bus: object) -> list[str]:
    return [e.event_id async for _, e, _ in bus.read() if e is not None]  # type: ignore[attr-defined]


async def test_publishes_in_batches(tmp_path: Path) -> None:
    bus = MemoryBus()
    publisher = EventPublisher(bus, tmp_path / "outbox", batch_size=64)
    await publisher.start()
    sent = [execution(i) for i in range(1000)]
    for event in sent:
        publisher.publish(event)
    assert await publisher.flush(5)
    assert await stream_ids(bus) == [e.event_id for e in sent]
    assert (publisher.published, publisher.spilled_to_outbox, publisher.queue_depth) == (1000, 0, 0)
    assert publisher.healthy and not publisher.outbox_active
    await publisher.close()


async def test_outage_spills_to_outbox_then_drains_without_duplicates(tmp_path: Path) -> None:
    bus = MemoryBus()
    publisher = EventPublisher(bus, tmp_path / "outbox", batch_size=10, retry_interval=0.01)
    await publisher.start()
    bus.set_available(False)
    sent = [execution(i) for i in range(55)]
    for event in sent:
        publisher.publish(event)
    await until(lambda: publisher.outbox_pending == 55)
    assert not publisher.healthy and publisher.outbox_active
    assert publisher.spilled_to_outbox == 55 and publisher.queue_depth == 0
    assert not await publisher.flush(0.05)

    bus.set_available(True)
    assert await publisher.flush(5)
    ids = await stream_ids(bus)
    assert sorted(ids) == sorted(e.event_id for e in sent)
    assert publisher.healthy and publisher.outbox_pending == 0
    assert list((tmp_path / "outbox").glob("*.jsonl*")) == []
    await publisher.close()


async def test_full_queue_spills_instead_of_blocking(tmp_path: Path) -> None:
    bus = MemoryBus()
    publisher = EventPublisher(bus, tmp_path / "outbox", queue_size=100)
    sent = [execution(i) for i in range(150)]
    for event in sent:  # not started: nothing drains the queue yet
        publisher.publish(event)
    assert publisher.queue_depth == 100
    assert publisher.spilled_to_outbox == 50 and publisher.outbox_pending == 50
    await publisher.start()
    assert await publisher.flush(5)
    ids = await stream_ids(bus)
    assert len(ids) == 150 and set(ids) == {e.event_id for e in sent}
    await publisher.close()


async def test_close_keeps_what_is_left_for_the_next_process(tmp_path: Path) -> None:
    down = MemoryBus()
    down.set_available(False)
    first = EventPublisher(down, tmp_path / "outbox", retry_interval=0.01)
    await first.start()
    sent = [execution(i) for i in range(30)]
    for event in sent:
        first.publish(event)
    await first.close(timeout=0.05)
    assert first.outbox_pending == 30
    late = execution(99)
    first.publish(late)  # after close: straight to disk, still no exception
    assert first.outbox_pending == 31

    bus = MemoryBus()
    second = EventPublisher(bus, tmp_path / "outbox", retry_interval=0.01)
    assert second.outbox_pending == 31
    await second.start()
    assert await second.flush(5)
    ids = await stream_ids(bus)
    assert len(ids) == 31 and set(ids) == {e.event_id for e in [*sent, late]}
    await second.close()


async def test_nats_restart_mid_stream_keeps_every_event_exactly_once(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    """The Done criterion: stop nats-server while publishing, start it again, lose nothing."""
    from promptlab.events.jetstream import JetStreamBus

    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    publisher = EventPublisher(bus, tmp_path / "outbox", batch_size=25, retry_interval=0.05)
    await publisher.start()
    sent = []
    for i in range(600):
        if i == 200:
            nats_server.stop()
            await until(lambda: not bus.connected)
        if i == 400:
            assert publisher.outbox_pending > 0  # the outage really went to disk
            nats_server.start()
        event = execution(i)
        sent.append(event)
        publisher.publish(event)
        if i % 10 == 0:
            await asyncio.sleep(0.001)  # let the pump run, as request handlers would

    assert await publisher.flush(20)
    assert publisher.spilled_to_outbox >= 200
    ids = await stream_ids(bus)
    counts = Counter(ids)
    assert len(ids) == 600 and set(counts) == {e.event_id for e in sent}
    assert max(counts.values()) == 1
    assert await bus.last_sequence() == 600
    await publisher.close()
    await bus.close()


class CountingBus(MemoryBus):
    """Records the size of every batch handed to publish_many."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def publish_many(self, events, *, timeout=5.0):  # type: ignore[no-untyped-def]
        self.batches.append(len(events))
        return await super().publish_many(events, timeout=timeout)


async def test_events_trickling_in_within_the_linger_go_as_one_batch(tmp_path: Path) -> None:
    bus = CountingBus()
    publisher = EventPublisher(bus, tmp_path / "outbox", linger_s=0.2)
    await publisher.start()
    sent = [execution(i) for i in range(5)]
    for event in sent:
        publisher.publish(event)
        await asyncio.sleep(0.01)  # one at a time, as calls finish
    await until(lambda: publisher.published == 5)
    assert bus.batches == [5]
    assert await stream_ids(bus) == [e.event_id for e in sent]
    await publisher.close()


async def test_flush_and_a_full_batch_cut_the_linger_short(tmp_path: Path) -> None:
    bus = CountingBus()
    publisher = EventPublisher(bus, tmp_path / "outbox", batch_size=10, linger_s=30.0)
    await publisher.start()
    for i in range(10):
        publisher.publish(execution(i))
    await until(lambda: publisher.published == 10, within=2.0)
    publisher.publish(execution(10))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await publisher.flush(2.0)
    assert loop.time() - started < 1.0
    assert bus.batches == [10, 1] and publisher.published == 11
    await publisher.close()


async def test_publish_durable_returns_once_the_stream_or_the_disk_holds_the_events(
    tmp_path: Path,
) -> None:
    bus = MemoryBus()
    publisher = EventPublisher(bus, tmp_path / "outbox", retry_interval=0.01)
    await publisher.start()
    first = [execution(1), execution(2)]
    assert await publisher.publish_durable(first) == "stream"
    assert await stream_ids(bus) == [e.event_id for e in first]  # no flush needed

    bus.set_available(False)
    later = [execution(3)], [execution(4)]
    assert await publisher.publish_durable(later[0]) == "outbox"
    assert publisher.outbox_pending == 1  # fsynced on disk before the return
    assert await publisher.publish_durable(later[1]) == "outbox"
    bus.set_available(True)
    assert await publisher.flush(5)
    # The outbox drains in order, and the next durable publish goes to the stream again.
    last = execution(5)
    assert await publisher.publish_durable([last]) == "stream"
    expected = [*first, *later[0], *later[1], last]
    assert await stream_ids(bus) == [e.event_id for e in expected]
    await publisher.close()
