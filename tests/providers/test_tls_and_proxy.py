"""HTTPS upstreams with a CA made in the test (trustme), TLS failures, and an HTTP CONNECT
proxy honoured through ``HTTPS_PROXY`` (and skipped for ``NO_PROXY`` hosts)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from fake_upstream import FakeUpstream
from provider_kit import BODY, MakeProviders, make_providers, raw_upstream, settings
from tunnel import ConnectProxy, TcpRelay

from promptlab.providers import Misconfigured, TLSFailed


@dataclass
class HttpsUpstream:
    fake: FakeUpstream
    port: int
    ca_file: Path

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1"


@pytest.fixture
async def https_upstream(tmp_path: Path) -> AsyncIterator[HttpsUpstream]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    fake = FakeUpstream()
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    yield HttpsUpstream(fake, runner.addresses[0][1], ca_file)
    await runner.cleanup()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                 "all_proxy", "NO_PROXY", "no_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def test_https_with_the_providers_ca_bundle(
    https_upstream: HttpsUpstream, make_providers: MakeProviders, no_proxy_env: object
) -> None:
    p = await make_providers(
        tls=settings(https_upstream.base_url, ca_bundle=str(https_upstream.ca_file))
    )
    answer = await p.complete("tls/m", BODY)
    assert answer.data["choices"][0]["message"]["content"] == "echo: hi"
    stream = await p.stream("tls/m", BODY)
    assert [x async for x in stream][-1] == b"[DONE]"


async def test_an_unknown_ca_is_a_tls_failure_and_is_not_retried(
    https_upstream: HttpsUpstream, make_providers: MakeProviders, no_proxy_env: object
) -> None:
    relay = TcpRelay(target_port=https_upstream.port)
    await relay.start()
    try:
        p = await make_providers(tls=settings(f"https://127.0.0.1:{relay.port}/v1", max_retries=3))
        with pytest.raises(TLSFailed) as caught:
            await p.complete("tls/m", BODY)
        assert caught.value.kind == "tls" and caught.value.status == 502
        assert relay.connections == 1, "a TLS failure is not retried"
        assert https_upstream.fake.requests == []
    finally:
        await relay.stop()


async def test_verify_false_accepts_any_certificate(
    https_upstream: HttpsUpstream, make_providers: MakeProviders, no_proxy_env: object
) -> None:
    p = await make_providers(tls=settings(https_upstream.base_url, verify=False))
    assert (await p.complete("tls/m", BODY)).data["choices"]


async def test_an_unreadable_ca_bundle_is_a_configuration_error(
    tmp_path: Path, make_providers: MakeProviders
) -> None:
    with pytest.raises(Misconfigured):
        await make_providers(
            tls=settings("https://127.0.0.1:1/v1", ca_bundle=str(tmp_path / "missing.pem"))
        )


async def test_https_proxy_from_the_environment_is_used(
    https_upstream: HttpsUpstream, make_providers: MakeProviders, no_proxy_env: pytest.MonkeyPatch
) -> None:
    proxy = ConnectProxy()
    await proxy.start()
    try:
        no_proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        p = await make_providers(
            tls=settings(https_upstream.base_url, ca_bundle=str(https_upstream.ca_file))
        )
        answer = await p.complete("tls/m", BODY)
        assert answer.data["choices"]
        assert proxy.tunnels == [f"127.0.0.1:{https_upstream.port}"]
        assert len(https_upstream.fake.requests) == 1
    finally:
        await proxy.stop()


async def test_no_proxy_hosts_are_reached_directly(
    https_upstream: HttpsUpstream, make_providers: MakeProviders, no_proxy_env: pytest.MonkeyPatch
) -> None:
    proxy = ConnectProxy()
    await proxy.start()
    try:
        no_proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
        p = await make_providers(
            tls=settings(https_upstream.base_url, ca_bundle=str(https_upstream.ca_file))
        )
        assert (await p.complete("tls/m", BODY)).data["choices"]
        assert proxy.tunnels == []
    finally:
        await proxy.stop()
