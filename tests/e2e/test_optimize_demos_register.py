"""End to end: ``promptlab optimize --demos --register`` as a user runs it, then served.

The command runs in a child process against the real fake upstream and a real
nats-server. The fake model learns a task (the parity of a number) only from
demonstrations of both of its answers, so the search finds a two-label set. With
``--register`` the winner becomes a live ``select = "fixed"`` variant: its registration
is in the stream (origin ``demos``, the search as its strategy, the held-out test as its
offline check) and in the variants bucket, and a sidecar started afterwards serves it
with exactly the demonstrations the search chose, in their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from aiohttp import ClientSession, web
from fake_upstream import FakeUpstream, parity
from polling import until

from promptlab.events.embedded import NatsServerProcess
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.models import ExecutionCompleted, VariantRegistered, decode
from promptlab.events.publisher import EventPublisher
from promptlab.events.subjects import Bucket, variant_key
from promptlab.prompts import PromptSpec
from promptlab.prompts.demos import Demo
from promptlab.sidecar.app import create_app
from promptlab.sidecar.config import (
    ProviderSettings,
    ServerSettings,
    TelemetrySettings,
    default_providers,
)
from promptlab.sidecar.ports import SidecarConfig

PROMPT = """
id = "parity"
[routing]
exploration_cap = 0.5
[[variables]]
name = "n"
type = "string"
required = true
[[variants]]
name = "base"
model = "fake/m"
template = "Number {{ n }}"
"""

EXPERIMENT = """
name = "parity-demos"
prompt = "parity.toml"
concurrency = 4
[[evaluators]]
kind = "exact"
"""


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    server = FakeUpstream(record=True, reply=parity)
    await server.start()
    yield server
    await server.stop()


def write_files(tmp_path: Path) -> Path:
    (tmp_path / "parity.toml").write_text(PROMPT)
    cases = "".join(
        f'[[cases]]\nid = "c{i}"\ninputs = {{ n = "item {i}" }}\n'
        f'expected = "{"even" if i % 2 == 0 else "odd"}"\n'
        for i in range(60)
    )
    path = tmp_path / "demos.toml"
    path.write_text(EXPERIMENT + cases)
    return path


async def optimize(tmp_path: Path, upstream: FakeUpstream, nats_url: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    env |= {
        "PROMPTLAB_PROVIDERS__FAKE__KIND": "openai",
        "PROMPTLAB_PROVIDERS__FAKE__API_BASE": upstream.base_url,
        "PROMPTLAB_PROVIDERS__FAKE__MAX_RETRIES": "0",
        "PROMPTLAB_NATS__URL": nats_url,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "promptlab", "optimize", str(write_files(tmp_path)), "--demos",
        *args, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, bus: JetStreamBus, upstream: FakeUpstream) -> AsyncIterator[str]:
    """A sidecar on ``bus`` that knows only the prompt file; yields its base URL."""
    settings = SidecarConfig(
        server=ServerSettings(),
        providers={
            **default_providers(),
            "fake": ProviderSettings(kind="openai", api_base=upstream.base_url),
        },
        telemetry=TelemetrySettings(),
    )
    spec = PromptSpec.model_validate(tomllib.loads(PROMPT))
    publisher = EventPublisher(bus, tmp_path / "sidecar-outbox")
    app = create_app(settings, prompts={"parity": spec}, publisher=publisher, bus=bus)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        await publisher.flush(10.0)
    finally:
        await runner.cleanup()


async def test_the_registered_winner_is_in_the_stream_and_served_with_its_fixed_demos(
    tmp_path: Path, upstream: FakeUpstream, nats_server: NatsServerProcess
) -> None:
    out = await optimize(tmp_path, upstream, nats_server.url, "--k", "1,2,4", "--seed", "1",
                         "--register")  # fmt: skip
    printed = re.search(r"^registered (\S+) as a live challenger of parity$", out, re.M)
    assert printed, out
    name = printed.group(1)

    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    try:
        registered = [
            e async for _, e, _ in bus.read(1)
            if isinstance(e, VariantRegistered) and e.variant == name
        ]  # fmt: skip
        assert len(registered) == 1
        event = registered[0]
        assert (event.source, event.origin, event.parent, event.strategy) == (
            "live", "demos", "base", "demos-search",
        )  # fmt: skip
        assert event.demos is not None and event.demos["select"] == "fixed"
        pool = event.demos["pool"]
        assert event.demos["k"] == len(pool) == 2
        assert {d["answer"] for d in pool} == {"even", "odd"}
        check = event.offline_check
        assert check is not None and check["passed"] and check["significant"]
        assert check["champion"] == "base" and check["n"] == 18 and check["mean_diff"] > 0
        # The winner the command printed for the prompt file is the one registered.
        pasted = tomllib.loads(out.split("# the winner, for the prompt file:\n")[1].split(
            "\nregistered ")[0])["variants"][0]  # fmt: skip
        assert pasted["name"] == name and pasted["demos"]["pool"] == pool
        stored = await bus.kv_get(str(Bucket.VARIANTS), variant_key("parity", name))
        assert stored is not None and stored.value is not None
        assert decode(stored.value).event_id == event.event_id

        # A sidecar started now picks the variant up and serves it with exactly that set.
        upstream.requests.clear()
        async with serve(tmp_path, bus, upstream) as base_url:
            await until_known(base_url, name)
            served = await calls_until_served(base_url, name)
        bodies = [r.body for r in upstream.requests if r.path.endswith("/chat/completions")]
        expected_turns = [
            message
            for d in pool
            for message in (
                {"role": "user", "content": f"Number {d['variables']['n']}"},
                {"role": "assistant", "content": d["answer"]},
            )
        ]
        with_demos = [b["messages"] for b in bodies if len(b["messages"]) > 1]
        assert len(with_demos) == len(served) >= 3
        for messages in with_demos:
            assert [{k: m[k] for k in ("role", "content")} for m in messages[:-1]] == (
                expected_turns
            )
            assert messages[-1]["content"] == "Number item 99"
        assert all(answer == "odd" for answer in served.values())  # the set teaches it
        demo_ids = [Demo.build(d["variables"], d["answer"]).id for d in pool]
        executions = {
            e.execution_id: e async for _, e, _ in bus.read(1)
            if isinstance(e, ExecutionCompleted) and e.execution_id in served
        }  # fmt: skip
        assert set(executions) == set(served)
        assert all(e.variant == name and e.demos == demo_ids for e in executions.values())
    finally:
        await bus.close()


async def until_known(base_url: str, variant: str) -> None:
    """Wait until the sidecar lists ``variant`` (it arrives through the variants bucket)."""

    async def listed() -> bool:
        async with (
            ClientSession() as session,
            session.get(f"{base_url}/admin/prompts/parity") as response,
        ):
            return response.status == 200 and variant in json.dumps(await response.json())

    await until(listed, within=15.0, what=f"{variant} served by the sidecar")


async def calls_until_served(base_url: str, variant: str, times: int = 3) -> dict[str, str]:
    """Routed calls (at most 60) until ``variant`` served ``times``; its answers by
    execution id."""
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0)
    served: dict[str, str] = {}
    try:
        for _ in range(60):
            raw = await client.chat.completions.with_raw_response.create(
                model="promptlab/parity",
                messages=[],
                extra_body={"promptlab": {"variables": {"n": "item 99"}}},
            )
            completion = raw.parse()
            if raw.headers["x-promptlab-variant"] == variant:
                served[completion.id] = completion.choices[0].message.content or ""
                if len(served) == times:
                    return served
    finally:
        await client.close()
    raise AssertionError(f"{variant} served {len(served)} of 60 calls")
