"""JetStream-only behaviour: connection errors, reconnects, stream (re)creation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from polling import until

from promptlab.events.bus import BusError, BusUnavailable, Delivery
from promptlab.events.config import NatsSettings
from promptlab.events.embedded import NatsServerProcess, free_port
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.models import FeedbackReceived
from promptlab.events.subjects import STREAM_NAME


def feedback(n: int) -> FeedbackReceived:
    return FeedbackReceived(execution_id=f"e{n}", name="thumbs_up", value=True)


async def test_no_server_is_bus_unavailable_within_the_connect_timeout() -> None:
    bus = JetStreamBus(NatsSettings(connect_timeout_s=0.5), url=f"nats://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(BusUnavailable, match="cannot connect"):
        await bus.start()
    assert time.monotonic() - started < 3
    assert not bus.connected


def test_embedded_url_must_be_resolved_first() -> None:
    with pytest.raises(BusError, match="resolve_nats_url"):
        JetStreamBus(NatsSettings(url="embedded"))


async def test_credentials_never_reach_error_messages() -> None:
    url = f"nats://user:s3cret@127.0.0.1:{free_port()}"
    bus = JetStreamBus(NatsSettings(connect_timeout_s=0.3), url=url)
    with pytest.raises(BusUnavailable) as info:
        await bus.start()
    assert "s3cret" not in str(info.value)


async def test_survives_a_server_restart(nats_server: NatsServerProcess) -> None:
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    await bus.start()  # idempotent
    await bus.publish(feedback(1))
    consumer = await bus.consumer("learner")
    for d in await consumer.fetch(10, timeout=2):
        await d.ack()

    nats_server.stop()
    await until(lambda: not bus.connected)
    with pytest.raises(BusUnavailable):
        await bus.publish(feedback(2))
    with pytest.raises(BusUnavailable):
        await bus.publish_many([feedback(2)])

    nats_server.start()
    await until(lambda: bus.connected)
    ack = await bus.publish(feedback(3))
    assert ack.sequence == 2
    got: list[Delivery] = []
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        got = await consumer.fetch(10, timeout=0.5)
    assert [d.sequence for d in got] == [2]
    await consumer.close()
    await bus.close()


async def test_stream_is_recreated_when_the_server_comes_back_empty(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    await bus.publish(feedback(1))
    nats_server.stop()
    await until(lambda: not bus.connected)
    blank = NatsServerProcess(tmp_path / "blank-store", port=nats_server.port)
    blank.start()
    try:
        await until(lambda: bus.connected)

        async def publish_works() -> bool:
            try:
                await bus.publish(feedback(2))
            except BusError:
                return False
            return True

        deadline = time.monotonic() + 10
        while not await publish_works():
            assert time.monotonic() < deadline, "stream was not recreated"
            await asyncio.sleep(0.05)
        assert await bus.last_sequence() == 1
        # The buckets are recreated right after the stream, by the same reconnect task.
        while True:
            try:
                await bus.kv_put("promptlab_routing", "p", b"x")
                break
            except BusError:
                assert time.monotonic() < deadline, "buckets were not recreated"
                await asyncio.sleep(0.05)
        entry = await bus.kv_get("promptlab_routing", "p")
        assert entry is not None and entry.value == b"x"
    finally:
        await bus.close()
        blank.stop()


async def test_start_updates_an_existing_stream(
    nats_server: NatsServerProcess, server_js: JetStreamContext
) -> None:
    first = JetStreamBus(NatsSettings(duplicate_window_s=60), url=nats_server.url)
    await first.start()
    await first.close()
    second = JetStreamBus(NatsSettings(duplicate_window_s=30), url=nats_server.url)
    await second.start()
    info = await server_js.stream_info(STREAM_NAME)
    assert info.config.duplicate_window == 30
    assert getattr(info.config.storage, "value", info.config.storage) == "file"
    await second.close()
