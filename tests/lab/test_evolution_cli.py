"""``promptlab evolve`` as a user runs it: a subprocess, real NATS, a fake mutator/model/judge."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from evolution_upstream import EvolutionUpstream
from test_evolution_experiment import write_experiment

from promptlab.events.jetstream import JetStreamBus
from promptlab.events.models import VariantRegistered, decode
from promptlab.events.subjects import Bucket


@pytest.fixture
async def upstream() -> AsyncIterator[EvolutionUpstream]:
    server = EvolutionUpstream()
    await server.start()
    yield server
    await server.stop()


async def evolve(
    tmp_path: Path, upstream: EvolutionUpstream, nats_url: str | None, *args: str
) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    env |= {
        "PROMPTLAB_PROVIDERS__FAKE__KIND": "openai",
        "PROMPTLAB_PROVIDERS__FAKE__API_BASE": upstream.base_url,
        "PROMPTLAB_PROVIDERS__FAKE__MAX_RETRIES": "0",
    }
    if nats_url is not None:
        env["PROMPTLAB_NATS__URL"] = nats_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "promptlab",
        "evolve",
        str(tmp_path / "evolve.toml"),
        *args,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_evolve_prints_progress_best_and_lineage_and_writes_json(
    tmp_path: Path, upstream: EvolutionUpstream
) -> None:
    write_experiment(tmp_path)
    code, out, err = await evolve(
        tmp_path,
        upstream,
        None,
        "--no-events",
        "--generations",
        "3",
        "--search",
        "pareto",
        "--json",
        "report.json",
    )
    assert code == 0, err
    assert [line.split(":")[0] for line in err.splitlines() if line.startswith("generation")] == [
        "generation 1",
        "generation 2",
        "generation 3",
    ]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["search"] == "pareto" and len(report["generations"]) == 3
    assert {"seed", "best", "generations", "rejected", "pareto", "calls", "spend_usd"} <= set(
        report
    )
    top = report["best"][0]
    assert top["variant"] in out and "lineage: " + top["variant"] in out
    assert "v1_simple (seed)" in out and "vs seed" in out
    # Each winner says whether it is significantly ahead of the seed, and by which test.
    verdict = "significantly ahead of" if top["significant"] else "but not significantly ahead of"
    assert f"{top['variant']}, {verdict} v1_simple @ " in out


async def test_flags_are_checked(tmp_path: Path, upstream: EvolutionUpstream) -> None:
    write_experiment(tmp_path)
    code, _, err = await evolve(tmp_path, upstream, None, "--no-events", "--strategies", "bogus")
    assert code == 2 and "strategies" in err


async def test_register_publishes_lineage_and_live_challengers(
    tmp_path: Path, upstream: EvolutionUpstream, nats_server
) -> None:
    write_experiment(tmp_path)
    code, out, err = await evolve(
        tmp_path, upstream, nats_server.url, "--generations", "3", "--register", "--json", "-"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["registered"]
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    try:
        events = [e async for _, e, _ in bus.read(1) if isinstance(e, VariantRegistered)]
        keys = await bus.kv_keys(str(Bucket.VARIANTS))
        stored = [await bus.kv_get(str(Bucket.VARIANTS), k) for k in keys]
    finally:
        await bus.close()
    offline = {e.variant for e in events if e.source == "offline"}
    assert offline == {c["variant"] for c in report["candidates"] if c["generation"] > 0}
    live = [e for e in events if e.source == "live"]
    assert sorted(e.variant for e in live) == sorted(report["registered"])
    assert all(e.origin == "mutation" and e.parents and e.generation for e in live)
    in_bucket = {decode(entry.value).variant for entry in stored if entry and entry.value}
    assert in_bucket == set(report["registered"])


async def test_a_run_that_finds_nothing_better_says_so_in_one_line(
    tmp_path: Path, upstream: EvolutionUpstream
) -> None:
    upstream.mutator_mode = "worse"  # every mutant forgets what the seed asks for
    write_experiment(tmp_path)
    code, out, err = await evolve(
        tmp_path, upstream, None, "--no-events", "--generations", "2", "--json", "report.json"
    )
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["improved"] is False and report["best"]
    lines = [line for line in out.splitlines() if line.startswith("nothing better than the seed")]
    assert len(lines) == 1
    assert "v1_simple" in lines[0] and "the seed stays" in lines[0]


async def test_a_run_that_improves_does_not_say_nothing_better(
    tmp_path: Path, upstream: EvolutionUpstream
) -> None:
    write_experiment(tmp_path)
    code, out, err = await evolve(tmp_path, upstream, None, "--no-events", "--generations", "2")
    assert code == 0, err
    assert "nothing better than the seed" not in out
