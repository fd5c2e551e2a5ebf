"""An external cluster's credentials and TLS, held apart from the URL, against real
nats-servers that require them; URLs printed without their secrets."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nkeys
import pytest
import trustme
from pydantic import SecretStr

from promptlab.events.bus import BusUnavailable
from promptlab.events.config import NatsSettings
from promptlab.events.credentials import redact_url
from promptlab.events.embedded import NatsServerProcess
from promptlab.events.jetstream import JetStreamBus


@contextlib.contextmanager
def server(tmp_path: Path, *args: str) -> Iterator[NatsServerProcess]:
    process = NatsServerProcess(tmp_path / "js", extra_args=args)
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def connects(url: str, **settings: object) -> bool:
    bus = JetStreamBus(NatsSettings(url=url, connect_timeout_s=1.5, **settings), url=url)  # type: ignore[arg-type]
    try:
        await bus.start()
    except BusUnavailable as exc:
        assert "Authorization Violation" in str(exc) or "TLS" in str(exc) or "SSL" in str(exc)
        return False
    finally:
        await bus.close()
    return True


async def test_user_and_password(tmp_path: Path) -> None:
    with server(tmp_path, "--user", "app", "--pass", "pw-1234567890") as nats:
        assert await connects(nats.url, user="app", password=SecretStr("pw-1234567890"))
        assert not await connects(nats.url, user="app", password=SecretStr("wrong"))
        assert not await connects(nats.url)


async def test_token(tmp_path: Path) -> None:
    with server(tmp_path, "--auth", "tok-abcdef0123456789") as nats:
        assert await connects(nats.url, token=SecretStr("tok-abcdef0123456789"))
        assert not await connects(nats.url, token=SecretStr("tok-wrong"))


async def test_nkey_seed_file(tmp_path: Path) -> None:
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed)
    conf = tmp_path / "nkey.conf"
    conf.write_text(f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}\n')
    with server(tmp_path, "-c", str(conf)) as nats:
        assert await connects(nats.url, nkey_seed_file=seed_file)
        assert not await connects(nats.url)


async def test_tls_with_a_client_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("promptlab-client")
    ca_file, server_file, client_file = (tmp_path / n for n in ("ca.pem", "s.pem", "c.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    server_cert.private_key_and_cert_chain_pem.write_to_path(str(server_file))
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(client_file))
    args = ("--tls", "--tlscert", str(server_file), "--tlskey", str(server_file))
    args += ("--tlscacert", str(ca_file), "--tlsverify")
    with server(tmp_path, *args) as nats:
        assert await connects(nats.url, tls_ca_file=ca_file, tls_cert_file=client_file)
        assert not await connects(nats.url, tls_ca_file=ca_file)  # no client certificate


def test_urls_are_printed_without_credentials() -> None:
    assert redact_url("nats://u:secret@a:1, nats://tok@b:2,nats://c:3") == (
        "nats://a:1,nats://b:2,nats://c:3"
    )
    with pytest.raises(ValueError):
        NatsSettings(password="x", unknown=1)  # type: ignore[call-arg]
    assert "hunter2" not in repr(NatsSettings(password=SecretStr("hunter2")))


def test_serve_with_unusable_bus_settings_says_so_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "promptlab.toml"
    config.write_text(
        f'[nats]\nurl = "nats://127.0.0.1:1"\ntls_ca_file = "{tmp_path}/missing-ca.pem"\n'
        f'outbox_dir = "{tmp_path}/outbox"\n[prompts]\ndir = "{tmp_path}/none"\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path}/p.db"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    done = subprocess.run(
        [sys.executable, "-m", "promptlab", "--config", str(config), "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "nats TLS settings cannot be used" in done.stderr
    assert "Traceback" not in done.stderr
