"""One active learner per store: the lease on SQLite and PostgreSQL, and two real
``promptlab learner`` processes on one store (kill the active one, the standby takes
over, the result equals a single pass)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from learner_factories import execution, feedback
from polling import until

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.snapshots import LearnerStatus
from promptlab.events.subjects import Bucket
from promptlab.learner.lease import Lease, lease_status
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.replay import compare, rebuild
from promptlab.learner.storage.store import Store

ROOT = Path(__file__).parent.parent.parent


def twin(store: Store) -> Store:
    """A second, independent handle on the same database (another learner's engine)."""
    return Store(store.url, schema=store.schema)


async def test_a_second_lease_waits_until_the_first_is_released(store: Store) -> None:
    other_store = twin(store)
    first, second = Lease(store, lease_s=0.5), Lease(other_store, lease_s=0.5)
    try:
        assert (await lease_status(store)).state == "free"
        assert await first.try_acquire()
        assert not await second.try_acquire()
        status = await lease_status(store)
        assert status.state == "active" and status.pid == os.getpid()
        assert await first.still_held()

        stopping = asyncio.Event()
        waiting = asyncio.create_task(second.acquire(stopping))
        await asyncio.sleep(0)  # the standby has tried once and is waiting
        assert not waiting.done()
        started = time.monotonic()
        await first.release()
        assert await asyncio.wait_for(waiting, 5.0)
        assert time.monotonic() - started < 0.5 + 0.5
        assert await second.still_held()
        assert (await lease_status(store)).holder == second.holder
    finally:
        await first.release()
        await second.release()
        await other_store.close()


async def test_a_standby_stops_waiting_when_asked(store: Store) -> None:
    other_store = twin(store)
    first, second = Lease(store, lease_s=0.2), Lease(other_store, lease_s=0.2)
    try:
        assert await first.try_acquire()
        stopping = asyncio.Event()
        waiting = asyncio.create_task(second.acquire(stopping))
        stopping.set()
        assert await asyncio.wait_for(waiting, 2.0) is False
        assert not second.held
    finally:
        await first.release()
        await other_store.close()


# --------------------------------------------------------------------------- two processes

N = 1200
PROMPT = """
id = "greet"
[reward]
feedback = "thumbs_up"
[[variants]]
name = "a"
model = "simulated/echo"
template = "Hi"
champion = true
[[variants]]
name = "b"
model = "simulated/echo"
template = "Hello"
"""


def config(tmp_path: Path, nats_url: str, db: Path) -> Path:
    prompts = tmp_path / "prompts"
    prompts.mkdir(exist_ok=True)
    (prompts / "greet.toml").write_text(PROMPT)
    path = tmp_path / "promptlab.toml"
    path.write_text(
        f'[nats]\nurl = "{nats_url}"\n\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{db}"\n\n'
        f'[prompts]\ndir = "{prompts}"\n\n'
        "[learner]\nsnapshot_interval_ms = 50\nbatch_size = 50\nlease_s = 2\n\n"
        # no automatic decisions: the comparison below is of the projection alone
        "[learner.promotion]\nmin_samples = 1000000\n"
    )
    return path


def spawn(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "promptlab", "--config", str(cfg), "learner"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.slow
async def test_two_learners_one_active_standby_takes_over_after_a_kill(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    db = tmp_path / "live.db"
    cfg = config(tmp_path, nats_server.url, db)
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    live = Store(f"sqlite+aiosqlite:///{db}")
    events = []
    for i in range(N):
        events.append(execution(f"x{i}", variant="ab"[i % 2], seconds=i))
        events.append(feedback(f"x{i}", value=i % 3 == 0, seconds=i + 1))
    first = spawn(cfg, tmp_path / "first.log")
    second: subprocess.Popen[bytes] | None = None
    try:
        await bus.publish_many(events[: N // 2])
        await until(
            lambda: _position_above(live, 0), 30, "the first learner never applied anything"
        )
        status = await lease_status(live)
        assert status.state == "active" and status.pid == first.pid

        second = spawn(cfg, tmp_path / "second.log")

        async def standby_logged() -> bool:
            return "standby" in (tmp_path / "second.log").read_text()

        await until(standby_logged, 30, "the second learner did not say it stands by")
        await bus.publish_many(events[N // 2 : N])
        await until(lambda: _position_above(live, N // 2 - 1), 30, "first learner stuck")
        assert (await lease_status(live)).pid == first.pid  # the standby applied nothing

        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = await live.position("promptlab-learner")
        await bus.publish_many(events[N:])
        last = await bus.last_sequence()
        started = time.monotonic()
        await until(lambda: _position_above(live, killed_at), 30, "the standby did not take over")
        took = time.monotonic() - started
        print(f"killed at {killed_at}; the standby applied events {took:.2f}s later")
        assert took < 2 + 2.0  # lease_s, plus the standby's own start on a busy machine
        assert (await lease_status(live)).pid == second.pid
        await until(lambda: _position_above(live, last - 1), 60, "the standby did not catch up")
        assert "taking over" in (tmp_path / "second.log").read_text()

        async def status_names_the_standby() -> bool:
            entry = await bus.kv_get(Bucket.LEARNER.value, "status")
            return entry is not None and LearnerStatus.decode(entry.value or b"").pid == second.pid

        await until(status_names_the_standby, 10, "the new learner's status is not in KV")

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
        finally:
            await single.close()
        totals = await live.arm_totals("greet")
        assert sum(a.executions for a in totals.values()) == N
        assert sum(a.rewarded for a in totals.values()) == N
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        await live.close()
        await bus.close()
    assert second.returncode == 0  # SIGTERM: a clean stop


async def _position_above(store: Store, value: int) -> bool:
    try:
        return await store.position("promptlab-learner") > value
    except Exception:  # the file or its tables do not exist yet
        return False
