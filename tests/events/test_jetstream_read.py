"""The JetStream read path: raw pull subscription, reply-subject parsing, header parsing."""

from __future__ import annotations

import asyncio
import random

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from promptlab.events import jetstream_consumers
from promptlab.events.bus import BusError
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.models import BaseEvent, ExecutionCompleted, decode
from promptlab.events.pull import RawClient, ack_fields
from promptlab.events.subjects import Subject


def execution(n: int) -> ExecutionCompleted:
    return ExecutionCompleted(
        execution_id=f"exec-{n}", model="gpt-test", provider="fake", latency_ms=float(n)
    )


def test_header_parser_gives_the_same_result_as_nats_py() -> None:
    rng = random.Random(1)
    pieces = [b"a", b"B", b"-", b":", b" ", b"\t", b"\r\n", b"\x1c", b"\x0b", b"\xc3\xa9",
              b"\xff", b"\r", b"\n", b"1", b"\x85"]  # fmt: skip
    typical = (
        b"Nats-Msg-Id: 0123abcd\r\nPromptlab-Event-Type: execution.completed\r\n"
        b"Promptlab-Schema-Version: 1\r\n\r\n"
    )
    samples = [typical, b"", b"\r\n", b"Bad Name: x\r\nGood: y\r\n", b"K:\tv \r\n"]
    samples += [
        b"".join(rng.choice(pieces) for _ in range(rng.randrange(25))) for _ in range(20_000)
    ]
    for raw in samples:
        assert RawClient._parse_header_lines(raw) == Client._parse_header_lines(raw), raw


def testack_fields_of_both_reply_subject_layouts() -> None:
    assert ack_fields(b"$JS.ACK.PROMPTLAB.learner.2.17.15.1700000000000000000.4") == (17, 2, 4)
    v2 = b"$JS.ACK.hub.ACCHASH.PROMPTLAB.learner.3.18.16.1700000000000000000.0.rnd"
    assert ack_fields(v2) == (18, 3, 0)
    with pytest.raises(BusError):
        ack_fields(b"_INBOX.abc")


async def _read_all(bus: JetStreamBus, start: int = 1) -> list[tuple[int, BaseEvent | None, bytes]]:
    return [row async for row in bus.read(start)]


@pytest.fixture(params=["raw", "fallback"])
def read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Small pull batches (so a read spans many requests), on the raw path and on the
    ordinary-callback path a nats-py without ``_process_msg`` would take."""
    monkeypatch.setattr(jetstream_consumers, "READ_BATCH", 7)
    if request.param == "fallback":
        monkeypatch.setattr(RawClient, "_process_msg", Client._process_msg)
    return str(request.param)


async def test_read_spans_many_pull_requests(jetstream_bus: JetStreamBus, read_path: str) -> None:
    events = [execution(i) for i in range(40)]
    await jetstream_bus.publish_many(events[:20])
    await jetstream_bus.publish_raw(Subject.DEAD_LETTER.value, b"aside", {"X": "y"})  # seq 21
    await jetstream_bus.publish_raw(Subject.EXECUTION.value, b"{not json")  # seq 22
    await jetstream_bus.publish_many(events[20:])
    rows = await _read_all(jetstream_bus)
    assert [s for s, _, _ in rows] == [*range(1, 21), *range(22, 43)]
    assert [e for _, e, _ in rows if e is not None] == events
    undecodable = [(s, d) for s, e, d in rows if e is None]
    assert undecodable == [(22, b"{not json")]
    assert all(decode(d) == e for _, e, d in rows if e is not None)
    assert [s for s, _, _ in await _read_all(jetstream_bus, 30)] == list(range(30, 43))


async def test_read_stops_at_the_end_it_saw_when_it_started(
    jetstream_bus: JetStreamBus, read_path: str
) -> None:
    await jetstream_bus.publish_many([execution(i) for i in range(30)])
    seen = []
    async for sequence, _event, _data in jetstream_bus.read():
        seen.append(sequence)
        if sequence == 3:
            await jetstream_bus.publish_many([execution(100 + i) for i in range(10)])
    assert seen == list(range(1, 31))


async def test_read_of_only_dead_letters_ends(jetstream_bus: JetStreamBus) -> None:
    await jetstream_bus.publish(execution(1))
    await jetstream_bus.publish_raw(Subject.DEAD_LETTER.value, b"aside", {"X": "y"})
    assert [s for s, _, _ in await _read_all(jetstream_bus, 2)] == []


async def test_reading_leaves_no_consumer_or_subscription_behind(
    jetstream_bus: JetStreamBus, server_js: JetStreamContext
) -> None:
    await jetstream_bus.publish_many([execution(i) for i in range(5)])
    assert len(await _read_all(jetstream_bus)) == 5
    assert jetstream_bus.fast_reads.open_subscriptions == 0
    assert (await server_js.stream_info("PROMPTLAB")).state.consumer_count == 0


async def test_a_follower_whose_consumer_vanishes_fails_instead_of_spinning(
    jetstream_bus: JetStreamBus, server_js: JetStreamContext
) -> None:
    await jetstream_bus.publish(execution(1))
    follower = jetstream_bus.read(1, stop_at_end=False)
    assert (await asyncio.wait_for(follower.__anext__(), 5))[0] == 1
    assert jetstream_bus.fast_reads.open_subscriptions == 1
    for info in await server_js.consumers_info("PROMPTLAB"):
        await server_js.delete_consumer("PROMPTLAB", info.name)
    with pytest.raises(BusError):
        await asyncio.wait_for(follower.__anext__(), 10)
    await follower.aclose()  # type: ignore[attr-defined]


async def test_the_installed_nats_py_still_calls_the_raw_read_path(
    jetstream_bus: JetStreamBus,
) -> None:
    """The fast path overrides nats-py internals; a nats-py that stops calling them would
    fall back silently (same result, a fraction of the speed). This fails instead."""
    assert callable(getattr(Client, "_process_msg", None))
    assert callable(getattr(Client, "_parse_header_lines", None))
    await jetstream_bus.publish_many([execution(i) for i in range(5)])
    before = jetstream_bus.fast_reads.deliveries
    assert len(await _read_all(jetstream_bus)) == 5
    assert jetstream_bus.fast_reads.deliveries >= before + 5
