"""`promptlab tui`: where it connects, and the clear failure when it cannot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptlab.cli import main
from promptlab.commands.tui import CannotConnect, open_bus, resolve_url, safe_url
from promptlab.events.config import NatsSettings
from promptlab.events.embedded import NatsServerProcess, free_port
from promptlab.settings import load_settings


def test_unreachable_nats_is_a_clear_error_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROMPTLAB_NATS__CONNECT_TIMEOUT_S", "0.5")
    port = free_port()

    assert main(["tui", "--nats", f"nats://user:secret@127.0.0.1:{port}"]) == 1

    err = capsys.readouterr().err
    assert f"promptlab tui: cannot connect to NATS at nats://127.0.0.1:{port}" in err
    assert "secret" not in err


def test_embedded_without_a_running_server_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMPTLAB_NATS__DATA_DIR", str(tmp_path / "nats"))

    assert main(["tui"]) == 1

    err = capsys.readouterr().err
    assert "no embedded NATS server is running" in err and "promptlab serve" in err


async def test_embedded_reuses_the_running_server(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    data_dir = tmp_path / "embedded"
    data_dir.mkdir()
    (data_dir / "server.json").write_text(
        json.dumps({"pid": nats_server.pid, "port": nats_server.port, "url": nats_server.url})
    )
    nats = NatsSettings(data_dir=data_dir)
    assert resolve_url(None, nats) == nats_server.url

    settings = load_settings(None, nats=nats)
    bus = await open_bus(None, settings)
    try:
        assert bus.connected
    finally:
        await bus.close()

    nats_server.stop()
    with pytest.raises(CannotConnect, match="not answering"):
        resolve_url(None, nats)


def test_safe_url_drops_credentials() -> None:
    assert safe_url("nats://u:p@a:1,nats://b:2") == "nats://a:1,nats://b:2"


async def test_screenshot_script_writes_both_screens(tmp_path: Path) -> None:
    from promptlab.tui.screenshots import capture

    paths = await capture(tmp_path)

    assert {p.name for p in paths} >= {"overview.svg", "detail.svg"}
    overview = (tmp_path / "overview.svg").read_text()
    assert overview.startswith("<svg") and "support" in overview
