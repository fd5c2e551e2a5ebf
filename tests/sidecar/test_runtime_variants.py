"""A variant registered through the admin API reaches sidecars that start later."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web
from conftest import summarize_prompt
from fake_upstream import FakeUpstream

from promptlab.events.memory import MemoryBus
from promptlab.events.publisher import EventPublisher
from promptlab.events.subjects import Bucket
from promptlab.sidecar.app import create_app
from promptlab.sidecar.config import ProviderSettings, default_providers
from promptlab.sidecar.ports import SidecarConfig


async def _start(bus: MemoryBus, upstream: FakeUpstream, outbox: Path) -> tuple[web.AppRunner, str]:
    settings = SidecarConfig(
        providers={
            **default_providers(),
            "fake": ProviderSettings(kind="openai", api_base=upstream.base_url),
        }
    )
    app = create_app(
        settings,
        prompts={"summarize": summarize_prompt()},
        publisher=EventPublisher(bus, outbox),
        bus=bus,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _variant_names(http: aiohttp.ClientSession, url: str) -> list[str]:
    async with http.get(url + "/admin/prompts/summarize") as resp:
        assert resp.status == 200
        return [v["name"] for v in (await resp.json())["variants"]]


async def test_late_sidecar_learns_runtime_variant(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    bus = MemoryBus()
    first, first_url = await _start(bus, fake_upstream, tmp_path / "o1")
    async with aiohttp.ClientSession() as http:
        body = {"name": "v3", "model": "fake/model-c", "template": "Explain {{ code }}"}
        async with http.post(first_url + "/admin/prompts/summarize/variants", json=body) as resp:
            assert resp.status == 201
        assert "summarize.v3" in await bus.kv_keys(str(Bucket.VARIANTS))

        second, second_url = await _start(bus, fake_upstream, tmp_path / "o2")
        try:
            for _ in range(100):
                if "v3" in await _variant_names(http, second_url):
                    break
                await asyncio.sleep(0.05)
            assert await _variant_names(http, second_url) == ["v1", "v2", "v3"]
        finally:
            await second.cleanup()
            await first.cleanup()
