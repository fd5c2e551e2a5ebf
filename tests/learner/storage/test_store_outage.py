"""A database that fails for a few seconds under a running learner, on SQLite and
PostgreSQL: nothing is dead-lettered, every event is applied once, replay is identical.

The failures are real: on SQLite another connection holds the write lock longer than
the learner's busy timeout ("database is locked"); on PostgreSQL the learner's sessions
are terminated again and again (``pg_terminate_backend``), lease session included.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from learner_factories import execution, feedback, registered
from sqlalchemy import text
from sqlalchemy.engine import make_url

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.models import BaseEvent
from promptlab.events.subjects import Subject
from promptlab.learner.config import LearnerSettings, StorageSettings
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.replay import compare, rebuild
from promptlab.learner.service import Learner
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.store import Store
from promptlab.prompts.spec import PromptSpec

GREET = PromptSpec.model_validate(
    {
        "id": "greet",
        "reward": {"feedback": "thumbs_up"},
        "variants": [
            {"name": "a", "model": "simulated/echo", "template": "Hi", "champion": True},
            {"name": "b", "model": "simulated/echo", "template": "Hello"},
        ],
    }
)
N = 600


def traffic(start: int, stop: int) -> list[BaseEvent]:
    events: list[BaseEvent] = []
    for i in range(start, stop):
        events.append(execution(f"x{i}", variant="ab"[i % 2], seconds=i))
        events.append(feedback(f"x{i}", value=i % 3 == 0, seconds=i + 1))
    return events


def hold_sqlite_write_lock(db: str, seconds: float, held: threading.Event) -> None:
    conn = sqlite3.connect(db, timeout=10, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        held.set()
        time.sleep(seconds)  # this thread *is* the failing database: it holds the lock
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def terminate_postgres_sessions(store: Store, seconds: float, held: threading.Event) -> int:
    killer = Store(store.url)  # a plain session, not one of the learner's
    killed = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            async with killer.engine.connect() as conn:
                killed += int(
                    await conn.scalar(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE application_name = :name AND pid <> pg_backend_pid()"
                        ),
                        {"name": store.application_name},
                    )
                    or 0
                )
            held.set()
            await asyncio.sleep(0.05)  # terminate again whatever reconnected meanwhile
    finally:
        await killer.close()
    return killed


@pytest.mark.slow
async def test_a_database_outage_mid_stream_dead_letters_nothing_and_replays_identically(
    store: Store, store_url_kind: str, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    settings = LearnerSettings(batch_size=40, snapshot_interval_ms=50, lease_s=1)
    learner = Learner(
        settings, StorageSettings(url=store.url), bus, {"greet": GREET}, store=store, policy=None
    )
    dead_letters = bus.subscribe([Subject.DEAD_LETTER.value])
    try:
        async with learner:
            await bus.publish_many(
                [registered(variant="a", champion=True), registered("greet", "b")]
            )
            await bus.publish_many(traffic(0, N // 2))
            await learner.caught_up(timeout=30)
            before = learner.projection.position

            held = threading.Event()
            if store_url_kind == "sqlite":
                db = make_url(store.url).database
                assert db is not None
                outage = asyncio.create_task(
                    asyncio.to_thread(hold_sqlite_write_lock, db, 6.5, held)
                )
            else:
                outage = asyncio.create_task(terminate_postgres_sessions(store, 3.0, held))
            assert await asyncio.to_thread(held.wait, 10)
            await bus.publish_many(traffic(N // 2, N))  # arrives while the database fails
            await outage
            await learner.caught_up(timeout=60)
            assert learner.projection.position > before
            assert learner.store_failures > 0, "the outage did not reach the learner"
            if store_url_kind == "sqlite":  # the lock blocks writes only: batches retried
                assert learner.store_retries > 0
            # On PostgreSQL the lease's own session was terminated too: the learner stands
            # by and takes the lease again once the database answers.
            for _ in range(300):  # up to 15 s
                if learner.active:
                    break
                await asyncio.sleep(0.05)
            assert learner.active
        counters = {name: value for name, value in await store.dump(t.learner_counters)}
        assert counters.get("dead_letters", 0) == 0
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(aiter(dead_letters)), 0.5)
        totals = await store.arm_totals("greet")
        assert sum(a.executions for a in totals.values()) == N
        assert sum(a.rewarded for a in totals.values()) == N

        single = Store(f"sqlite+aiosqlite:///{tmp_path / 'single.db'}")
        await single.create()
        try:
            await rebuild(
                bus,
                single,
                consumer=settings.durable,
                until=await store.position(settings.durable),
                rewards={"greet": RewardRule(feedback="thumbs_up")},
            )
            assert await compare(store, single) == []
        finally:
            await single.close()
    finally:
        await bus.close()
