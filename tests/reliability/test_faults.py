"""Cases 1-5, 8 and 9: the sidecar's own parts fail; every call is still answered and
every execution reaches the stream exactly once.

Each case runs ``promptlab serve`` (and, where the projection is checked, a second
``serve`` with the learner) against its own nats-server, killed, paused or overflowed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from procs import (
    Outcome,
    Serve,
    Stack,
    call_body,
    clean_env,
    drive,
    exactly_once,
    http,
    learner_for,
    paced,
    projected_rows,
    promptlab_cli,
    stream_books,
    stream_events,
    wait_books,
    wait_projection,
    when,
)

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.models import ExecutionCompleted
from promptlab.events.publisher import EventPublisher
from promptlab.events.rejects import read_rejects
from promptlab.events.subjects import STREAM_NAME, Subject
from promptlab.sidecar.app import create_app
from promptlab.sidecar.ports import SidecarConfig


@pytest.mark.slow
async def test_01_nats_killed_and_restarted_under_traffic(
    tmp_path: Path,
    stack: Callable[..., Stack],
    spawn: Callable[..., Serve],
    figures: dict[str, Any],
) -> None:
    s = stack()
    outcome = Outcome()
    traffic = asyncio.create_task(paced([s.url], 600, outcome))
    await when(lambda: outcome.answered >= 150)
    await asyncio.to_thread(s.nats.stop)
    await when(lambda: outcome.answered >= 400)
    await asyncio.to_thread(s.nats.start)
    await traffic
    assert outcome.answered == 600, (outcome.statuses, outcome.failures[:3])
    books = await wait_books(s.nats.url, outcome.execution_ids, timeout=60)
    lost, duplicated = exactly_once(books, outcome.execution_ids)
    assert (lost, duplicated) == (0, 0)
    assert sum(books.values()) == 600
    learner = learner_for(tmp_path, s, spawn)
    projected = await wait_projection(learner.config, 600)
    assert projected == 600
    figures.update(
        calls=600, answered=outcome.answered, lost=lost, duplicated=duplicated, projected=projected
    )


@pytest.mark.slow
async def test_02_nats_paused_past_the_publish_timeout(
    stack: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    s = stack()
    outcome = Outcome()
    traffic = asyncio.create_task(paced([s.url], 400, outcome, pause=0.02))
    await when(lambda: outcome.answered >= 100)
    assert s.nats.pid is not None
    os.kill(s.nats.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(6.5)  # the outage itself: longer than the 5 s publish timeout
    finally:
        os.kill(s.nats.pid, signal.SIGCONT)
    await traffic
    assert outcome.answered == 400, (outcome.statuses, outcome.failures[:3])
    books = await wait_books(s.nats.url, outcome.execution_ids, timeout=60)
    lost, duplicated = exactly_once(books, outcome.execution_ids)
    assert (lost, duplicated) == (0, 0)
    figures.update(calls=400, answered=outcome.answered, lost=lost, duplicated=duplicated)


@pytest.mark.slow
async def test_03_outage_longer_than_the_queue_spills_to_the_outbox(
    stack: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    s = stack(env=clean_env(PROMPTLAB_NATS__PUBLISH_QUEUE_SIZE="100"))
    await asyncio.to_thread(s.nats.stop)
    outcome = await drive([s.url], 500, concurrency=8)
    assert outcome.answered == 500, (outcome.statuses, outcome.failures[:3])
    spilled = sum(
        len(p.read_bytes().splitlines())
        for p in s.outbox_dir.glob("*.jsonl*")
        if not p.name.endswith(".acked")
    )
    await asyncio.to_thread(s.nats.start)
    books = await wait_books(s.nats.url, outcome.execution_ids, timeout=60)
    lost, duplicated = exactly_once(books, outcome.execution_ids)
    assert (lost, duplicated) == (0, 0)
    assert spilled >= 500 - 100  # beyond what the 100-event queue can hold
    figures.update(
        calls=500, answered=outcome.answered, spilled=spilled, lost=lost, duplicated=duplicated
    )


@pytest.mark.slow
async def test_04_learner_sigkilled_mid_batch_projection_equals_replay(
    tmp_path: Path,
    stack: Callable[..., Stack],
    spawn: Callable[..., Serve],
    figures: dict[str, Any],
) -> None:
    s = stack()
    outcome = Outcome()
    stop = asyncio.Event()
    traffic = asyncio.create_task(paced([s.url], 0, outcome, pause=0.01, stop=stop))
    db = tmp_path / "learner" / "promptlab.db"
    kills = 0
    for _ in range(3):
        learner = await asyncio.to_thread(learner_for, tmp_path, s, spawn)
        before = projected_rows(db)
        # Killed while it is applying batches of the live traffic.
        await when(lambda: projected_rows(db) > before + 20, timeout=90)  # noqa: B023
        learner.kill()
        kills += 1
    stop.set()
    await traffic
    calls = outcome.answered
    assert calls == outcome.total, (outcome.statuses, outcome.failures[:3])
    learner = await asyncio.to_thread(learner_for, tmp_path, s, spawn)
    projected = await wait_projection(learner.config, calls, timeout=90)
    replay = await asyncio.to_thread(promptlab_cli, learner.config, "replay")
    assert projected == calls
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-2000:]
    figures.update(calls=calls, kills=kills, projected=projected, replay="identical")


async def test_05_poison_message_is_dead_lettered(
    tmp_path: Path,
    stack: Callable[..., Stack],
    spawn: Callable[..., Serve],
    figures: dict[str, Any],
) -> None:
    import nats as nats_client

    s = stack()
    nc = await nats_client.connect(s.nats.url)
    try:
        js = nc.jetstream()
        await js.publish(Subject.EXECUTION.value, b"{not json at all")
        await js.publish(Subject.EXECUTION.value, b'{"type": "execution.completed"}')
        first = await drive([s.url], 20)
        learner = learner_for(tmp_path, s, spawn)
        projected = await wait_projection(learner.config, 20)
        assert projected == 20
        letters = []
        sub = await js.subscribe(
            Subject.DEAD_LETTER.value, stream=STREAM_NAME, ordered_consumer=True
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(letters) < 2 and loop.time() < deadline:
            try:
                letters.append(await sub.next_msg(timeout=1))
            except nats_client.errors.TimeoutError:
                continue
        assert len(letters) == 2
        reasons = [m.headers.get("Promptlab-Dead-Letter-Reason") for m in letters if m.headers]
        assert len(reasons) == 2 and all(reasons), reasons
        second = await drive([s.url], 10)
        assert await wait_projection(learner.config, 30) == 30
    finally:
        await nc.close()
    figures.update(
        poison=2, dead_lettered=len(letters), calls=first.answered + second.answered, projected=30
    )


async def test_05_unencodable_event_goes_to_the_reject_file(
    tmp_path: Path,
    nats_server: NatsServerProcess,
    caplog: pytest.LogCaptureFixture,
    figures: dict[str, Any],
) -> None:
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    publisher = EventPublisher(bus, tmp_path / "outbox", queue_size=100)
    await publisher.start()
    try:

        def event(subject: str) -> ExecutionCompleted:
            return ExecutionCompleted(
                execution_id=os.urandom(8).hex(),
                model="fake/m",
                provider="fake",
                subject=subject,
                latency_ms=1.0,
                status="ok",
            )

        bad = event("lone \ud800 surrogate")
        good = [event(f"user{n}") for n in range(50)]
        with caplog.at_level(logging.ERROR, logger="promptlab.events.rejects"):
            for e in good[:25]:
                publisher.publish(e)
            publisher.publish(bad)
            for e in good[25:]:
                publisher.publish(e)
            assert await publisher.flush(10)
        assert publisher.running and publisher.rejected == 1
        assert any(bad.event_id in r.getMessage() for r in caplog.records)
        rejects = read_rejects(tmp_path / "outbox")
        assert [r["event_id"] for r in rejects] == [bad.event_id]
        books = {
            e.execution_id
            for e in [ev async for _, ev, _ in bus.read(1) if ev is not None]
            if isinstance(e, ExecutionCompleted)
        }
        assert books == {e.execution_id for e in good}
        # While NATS is away the outbox path screens the same way.
        nats_server.stop()
        publisher.publish(event("again \udfff"))
        publisher.publish(good[0].model_copy(update={"execution_id": "after-outage"}))
        await when(lambda: publisher.rejected == 2 and publisher.outbox_pending >= 1, 20)
        assert publisher.running
    finally:
        await publisher.close()
        await bus.close()
    figures.update(good=50, rejected=2, lost=0, publisher="running")


async def test_05_readyz_fails_when_the_publisher_is_not_running(
    tmp_path: Path, nats_server: NatsServerProcess, figures: dict[str, Any]
) -> None:
    # A serve process gives no way to stop its publisher from outside, so this runs the
    # same create_app in-process, on a real nats-server and a real port.
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    publisher = EventPublisher(bus, tmp_path / "outbox")
    app = create_app(SidecarConfig(), prompts={}, publisher=publisher, bus=bus)
    try:
        async with TestClient(TestServer(app)) as client:
            ready = await client.get("/readyz")
            assert ready.status == 200
            await publisher.close()
            stopped = await client.get("/readyz")
            body = await stopped.json()
            assert stopped.status == 503 and body["checks"]["publisher"] == "stopped"
    finally:
        await bus.close()
    figures.update(readyz_running=200, readyz_stopped=503)


@pytest.mark.slow
async def test_08_client_disconnect_cancels_the_upstream_call(
    stack: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    s = stack()
    s.upstream.chunk_delay_s = 0.2
    body = call_body(0, stream=True)
    execution_id = None
    async with aiohttp.ClientSession() as session:
        async with session.post(s.url + "/v1/chat/completions", json=body) as resp:
            execution_id = resp.headers["X-Promptlab-Execution"]
            await resp.content.readline()
        # leaving the block closes the connection mid-stream
    await when(lambda: s.upstream.cancelled_streams >= 1, 15)
    deadline = asyncio.get_running_loop().time() + 15
    status = None
    while status is None and asyncio.get_running_loop().time() < deadline:
        for event in await stream_events(s.nats.url):
            if isinstance(event, ExecutionCompleted) and event.execution_id == execution_id:
                status = event.status
        await asyncio.sleep(0.1)
    assert status == "cancelled"
    s.upstream.chunk_delay_s = 0.0
    reply = await http("POST", s.url + "/v1/chat/completions", json_body=call_body(1))
    assert reply.status == 200
    figures.update(upstream_cancelled=s.upstream.cancelled_streams, status=status)


@pytest.mark.slow
async def test_09_sigterm_under_load_drains_and_flushes(
    stack: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    s = stack()
    s.upstream.chunk_delay_s = 0.0
    for _ in range(64):
        s.upstream.hang_next(0.5)
    outcome = Outcome()
    traffic = asyncio.create_task(drive([s.url], 64, concurrency=32, outcome=outcome, timeout=30))
    await when(lambda: len(s.upstream.requests) >= 16, 15)
    code = await asyncio.to_thread(s.serve.terminate)
    await traffic
    assert code == 0
    errors = {k: v for k, v in outcome.statuses.items() if k != 200}
    assert not errors, errors
    assert outcome.answered >= 16
    books = await stream_books(s.nats.url)
    lost, duplicated = exactly_once(books, outcome.execution_ids)
    assert (lost, duplicated) == (0, 0)
    leftover = [p for p in s.outbox_dir.glob("*.jsonl*")]
    figures.update(
        in_flight_answered=outcome.answered,
        refused_after_stop=len(outcome.failures),
        exit=code,
        lost=lost,
        duplicated=duplicated,
        outbox_left=len(leftover),
    )
