"""Kill the learner mid-batch (SIGKILL), restart it, and compare with a single pass.

A real nats-server, a real learner process, a SQLite file. The stream holds a few
thousand executions and feedback (some feedback before its execution, some duplicated,
one poison message); the learner is killed several times while it works, then runs to
the end. Its tables must equal those of a projection built in one uninterrupted pass.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from learner_factories import execution, feedback

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.models import BaseEvent
from promptlab.events.subjects import Subject
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.replay import compare, rebuild
from promptlab.learner.storage.store import Store

HERE = Path(__file__).parent
N = 2500


def workload() -> list[BaseEvent]:
    events: list[BaseEvent] = []
    for i in range(N):
        ex = execution(
            f"x{i}",
            variant="ab"[i % 2],
            seconds=i,
            latency_ms=40.0 + i % 300,
            cost_usd=0.0001 * (i % 7),
        )
        fb = feedback(f"x{i}", value=(i * 7919) % 10 < (6 if i % 2 else 5), seconds=i + 2)
        events.extend([fb, ex] if i % 9 == 0 else [ex, fb])
    return events


def position(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            row = conn.execute("select sequence from projection_position").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row else 0


def spawn(url: str, db: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent.parent), str(HERE)])}
    with open(db.with_suffix(".log"), "ab") as log:
        return subprocess.Popen(
            [sys.executable, str(HERE / "learner_process.py"), url, str(db), "100"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


async def wait_position(db: Path, above: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pos = position(db)
        if pos > above:
            return pos
        await asyncio.sleep(0.005)
    raise TimeoutError(f"projection stuck at {position(db)}")


@pytest.mark.slow
async def test_sigkill_mid_batch_then_restart_equals_a_single_pass(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    try:
        events = workload()
        half = len(events) // 2
        await bus.publish_many(events[:half])
        await bus.publish_raw(Subject.EXECUTION.value, b"\x00poison")
        await bus.publish_many(events[half:])
        await bus.publish_many(events[100:300])  # duplicates (same ids): dropped by the stream

        db = tmp_path / "live.db"
        kills = []
        for round_ in range(3):
            proc = spawn(nats_server.url, db)
            try:
                seen = await wait_position(db, above=kills[-1] if kills else 0)
                await asyncio.sleep(0.05 * (round_ + 1))  # let it get into the next batches
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            kills.append(position(db))
            assert kills[-1] >= seen
        proc = spawn(nats_server.url, db)
        try:
            last = await bus.last_sequence()
            await wait_position(db, above=last - 2, timeout=60)  # the dead letter comes last
            await asyncio.sleep(0.3)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        print(f"killed at positions {kills}, final {position(db)} of {last}")
        assert kills[0] < kills[-1] < position(db), f"kills at {kills}, final {position(db)}"

        live = Store(f"sqlite+aiosqlite:///{db}")
        single = Store(f"sqlite+aiosqlite:///{tmp_path / 'single.db'}")
        await single.create()
        try:
            await rebuild(
                bus,
                single,
                consumer="promptlab-learner",
                until=await live.position("promptlab-learner"),
                rewards={"greet": RewardRule(feedback="thumbs_up")},
            )
            assert await compare(live, single) == []
            totals = await live.arm_totals("greet")
            assert totals["a"].executions + totals["b"].executions == N
            assert totals["a"].rewarded + totals["b"].rewarded == N
        finally:
            await live.close()
            await single.close()
    finally:
        await bus.close()
