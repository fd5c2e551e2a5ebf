"""Cases 10-12 on real engines: the database away under traffic, a 3-node JetStream
cluster with PostgreSQL, and ``serve --workers 2``."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fake_upstream import FakeUpstream
from procs import (
    Outcome,
    Serve,
    Stack,
    clean_env,
    drive,
    exactly_once,
    learner_for,
    paced,
    promptlab_cli,
    wait_books,
    wait_projection,
    when,
    write_config,
)

from promptlab.events.embedded import NatsServerProcess, free_port
from promptlab.events.subjects import STREAM_NAME, Subject

POSTGRES = os.environ.get(
    "PROMPTLAB_TEST_POSTGRES_ADMIN", "postgresql://postgres@127.0.0.1:5432/test"
)


async def dead_letters(nats_url: str) -> int:
    import nats as nats_client

    nc = await nats_client.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM_NAME, subjects_filter=Subject.DEAD_LETTER.value)
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()


@pytest.mark.slow
async def test_10_database_unavailable_for_10s(
    tmp_path: Path,
    stack: Callable[..., Stack],
    spawn: Callable[..., Serve],
    figures: dict[str, Any],
) -> None:
    s = stack()
    learner = learner_for(tmp_path, s, spawn)
    db = tmp_path / "learner" / "promptlab.db"
    warm = await drive([s.url], 50)
    assert await wait_projection(learner.config, 50) == 50
    outcome = Outcome()
    traffic = asyncio.create_task(paced([s.url], 400, outcome, pause=0.05))
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        con = sqlite3.connect(db, timeout=30, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        locked.set()
        release.wait(10.0)  # the outage: no writer gets in for 10 s
        con.execute("ROLLBACK")
        con.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    await asyncio.to_thread(locked.wait, 10)
    await asyncio.to_thread(holder.join, 30)
    await traffic
    assert outcome.answered == 400, outcome.statuses
    total = 450
    assert await wait_projection(learner.config, total, timeout=90) == total
    letters = await dead_letters(s.nats.url)
    replay = await asyncio.to_thread(promptlab_cli, learner.config, "replay")
    assert letters == 0
    assert replay.returncode == 0, replay.stdout[-1500:]
    figures.update(
        calls=total,
        answered=warm.answered + outcome.answered,
        db_locked_s=10,
        dead_lettered=letters,
        replay="identical",
    )


# --------------------------------------------------------------------------- cluster


class Cluster:
    """Three nats-server processes with JetStream, routed to each other on loopback."""

    def __init__(self, root: Path) -> None:
        cluster_ports = [free_port() for _ in range(3)]
        self.nodes: dict[str, NatsServerProcess] = {}
        for i in range(3):
            name = f"n{i + 1}"
            routes = ",".join(
                f"nats://127.0.0.1:{p}" for j, p in enumerate(cluster_ports) if j != i
            )
            self.nodes[name] = NatsServerProcess(
                root / name,
                extra_args=[
                    "--server_name", name, "--cluster_name", "promptlab-test",
                    "--cluster", f"nats://127.0.0.1:{cluster_ports[i]}", "--routes", routes,
                ],
            )  # fmt: skip

    @property
    def url(self) -> str:
        return ",".join(n.url for n in self.nodes.values())

    def start(self) -> None:
        threads = [
            threading.Thread(target=n.start, kwargs={"timeout": 30}) for n in self.nodes.values()
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()


async def wait_for_jetstream(url: str, timeout: float = 60.0) -> None:
    """Until the cluster has elected its JetStream meta leader (account info answers)."""
    import nats as nats_client

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            nc = await nats_client.connect(servers=url.split(","), connect_timeout=2)
            try:
                await nc.jetstream().account_info()
                return
            finally:
                await nc.close()
        except Exception as exc:  # not formed yet: no meta leader, no responders
            last = exc
        await asyncio.sleep(0.2)
    raise RuntimeError(f"JetStream cluster not ready after {timeout:.0f}s: {last!r}")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path / "cluster")
    c.start()
    try:
        await wait_for_jetstream(c.url)
        yield c
    finally:
        c.stop()


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this test (skipped when none is reachable)."""
    if not _postgres_reachable():
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    try:
        import asyncpg
    except ImportError:
        pytest.skip("asyncpg not installed")
    name = f"pl_rel_{uuid.uuid4().hex[:10]}"
    try:
        con = await asyncpg.connect(POSTGRES)
    except Exception as exc:
        pytest.skip(f"PostgreSQL unusable: {exc}")
    try:
        await con.execute(f'CREATE DATABASE "{name}"')
    finally:
        await con.close()
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    con = await asyncpg.connect(POSTGRES)
    try:
        await con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await con.close()


async def stream_leader(url: str) -> str:
    import nats as nats_client

    nc = await nats_client.connect(servers=url.split(","))
    try:
        info = await nc.jetstream().stream_info(STREAM_NAME)
        assert info.cluster is not None and info.cluster.leader
        return str(info.cluster.leader)
    finally:
        await nc.close()


def _cluster_config(root: Path, cluster: Cluster, upstream: FakeUpstream, pg: str) -> Path:
    return write_config(
        root,
        nats_url=cluster.url,
        upstream_base=upstream.base_url,
        storage_url=pg,
        extra="[learner]\nsnapshot_interval_ms = 100\n",
    )


def _replicas_env() -> dict[str, str]:
    return clean_env(PROMPTLAB_NATS__STREAM_REPLICAS="3")


@pytest.mark.slow
@pytest.mark.postgres
async def test_11_cluster_stream_leader_killed_under_traffic(
    tmp_path: Path,
    cluster: Cluster,
    upstream: FakeUpstream,
    postgres_url: str,
    spawn: Callable[..., Serve],
    figures: dict[str, Any],
) -> None:
    env = _replicas_env()
    sidecars = [
        spawn(_cluster_config(tmp_path / f"sidecar{i}", cluster, upstream, postgres_url),
              tmp_path / f"sidecar{i}.log", env=env)
        for i in range(2)
    ]  # fmt: skip
    learner_cfg = _cluster_config(tmp_path / "learner", cluster, upstream, postgres_url)
    learner = spawn(learner_cfg, tmp_path / "learner.log", learner=True, env=env)
    urls = [s.url for s in sidecars]
    outcome = Outcome()
    traffic = asyncio.create_task(paced(urls, 600, outcome, pause=0.01))
    await when(lambda: outcome.answered >= 150, 60)
    leader = await stream_leader(cluster.url)
    await asyncio.to_thread(cluster.nodes[leader].stop)
    await traffic
    assert outcome.answered == 600, (outcome.statuses, outcome.failures[:3])
    books = await wait_books(cluster.url, outcome.execution_ids, timeout=90)
    lost, duplicated = exactly_once(books, outcome.execution_ids)
    assert (lost, duplicated) == (0, 0)
    projected = await wait_projection(learner.config, 600, timeout=90)
    assert projected == 600
    replay = await asyncio.to_thread(promptlab_cli, learner.config, "replay")
    assert replay.returncode == 0, replay.stdout[-1500:] + replay.stderr[-1500:]
    figures.update(
        calls=600, answered=outcome.answered, killed=f"stream leader {leader}", lost=lost,
        duplicated=duplicated, projected=projected, replay="identical",
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgres
async def test_11_cluster_active_learner_killed_standby_takes_over(
    tmp_path: Path,
    cluster: Cluster,
    upstream: FakeUpstream,
    postgres_url: str,
    spawn: Callable[..., Serve],
    figures: dict[str, Any],
) -> None:
    env = _replicas_env()
    sidecar = spawn(
        _cluster_config(tmp_path / "sidecar", cluster, upstream, postgres_url),
        tmp_path / "sidecar.log",
        env=env,
    )
    outcome = Outcome()
    stop = asyncio.Event()
    traffic = asyncio.create_task(paced([sidecar.url], 0, outcome, pause=0.01, stop=stop))
    # The first learner started is the active one; the second stands by.
    active = await asyncio.to_thread(
        spawn,
        _cluster_config(tmp_path / "learner0", cluster, upstream, postgres_url),
        tmp_path / "learner0.log",
        learner=True,
        env=env,
    )
    await when(lambda: outcome.answered >= 100, 60)
    assert await wait_projection(active.config, 50, timeout=60) >= 50
    standby = await asyncio.to_thread(
        spawn,
        _cluster_config(tmp_path / "learner1", cluster, upstream, postgres_url),
        tmp_path / "learner1.log",
        learner=True,
        env=env,
    )
    await when(lambda: outcome.answered >= 200, 60)
    leader = await stream_leader(cluster.url)
    await asyncio.to_thread(cluster.nodes[leader].stop)
    await when(lambda: outcome.answered >= 300, 60)
    active.kill()
    await asyncio.sleep(3.0)  # traffic goes on with only the standby left
    stop.set()
    await traffic
    calls = outcome.answered
    assert calls == outcome.total
    projected = await wait_projection(standby.config, calls, timeout=90)
    assert projected == calls
    replay = await asyncio.to_thread(promptlab_cli, standby.config, "replay")
    assert replay.returncode == 0
    figures.update(calls=calls, projected=projected, takeover="standby")


# --------------------------------------------------------------------------- workers


async def metrics_totals(url: str, scrapes: int = 40) -> set[int]:
    """Distinct ``promptlab_calls_total`` sums seen over fresh connections (SO_REUSEPORT
    spreads them over the workers; each worker counts its own calls)."""
    seen: set[int] = set()
    for _ in range(scrapes):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            async with s.get(url + "/metrics") as resp:
                text = await resp.text()
        seen.add(
            int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("promptlab_calls_total{")))
        )  # fmt: skip
    return seen


@pytest.mark.slow
async def test_12_serve_workers_2000_calls(
    tmp_path: Path,
    nats: NatsServerProcess,
    upstream: FakeUpstream,
    spawn: Callable[..., Serve],
    figures: dict[str, Any],
) -> None:
    config = write_config(tmp_path / "workers", nats_url=nats.url, upstream_base=upstream.base_url)
    upstream.record = False
    serve = spawn(config, tmp_path / "workers.log", learner=True, args=["--workers", "2"])
    outcome = await drive([serve.url], 2000, concurrency=32)
    assert outcome.answered == 2000, (outcome.statuses, outcome.failures[:3])
    books = await wait_books(nats.url, outcome.execution_ids, timeout=60)
    lost, duplicated = exactly_once(books, outcome.execution_ids)
    assert (lost, duplicated) == (0, 0)
    projected = await wait_projection(config, 2000, timeout=90)
    assert projected == 2000
    totals = await metrics_totals(serve.url)
    assert sum(totals) == 2000 or (len(totals) == 1 and 2 * next(iter(totals)) == 2000), totals
    figures.update(
        calls=2000, answered=outcome.answered, lost=lost, duplicated=duplicated,
        stats_total=projected, metrics_per_worker=sorted(totals),
    )  # fmt: skip
