"""`promptlab replay | stats | promote | rollback | pause` against a real nats-server.

A learner runs in-process on JetStream; the CLI runs in a worker thread (it starts its
own event loop), configured through a TOML file like a user's.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from learner_factories import execution, feedback

from promptlab.cli import main
from promptlab.events.embedded import NatsServerProcess
from promptlab.events.jetstream import JetStreamBus
from promptlab.learner.service import Learner
from promptlab.prompts import load_prompt_dir
from promptlab.settings import Settings, load_settings

PROMPT = """
id = "greet"

[reward]
feedback = "thumbs_up"

[promotion]
min_samples = 30

[[variants]]
name = "a"
model = "simulated/echo"
template = "Hi"
champion = true

[[variants]]
name = "b"
model = "simulated/echo"
template = "Hello"
"""


@pytest.fixture
def config(tmp_path: Path, nats_server: NatsServerProcess) -> Path:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "greet.toml").write_text(PROMPT)
    path = tmp_path / "promptlab.toml"
    path.write_text(
        f'[nats]\nurl = "{nats_server.url}"\n\n'
        f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path / "learner.db"}"\n\n'
        f'[prompts]\ndir = "{prompts}"\n\n'
        "[learner]\nsnapshot_interval_ms = 20\n"
    )
    return path


@pytest.fixture
async def running(
    config: Path, nats_server: NatsServerProcess
) -> AsyncIterator[tuple[Settings, Learner, JetStreamBus]]:
    settings = load_settings(config)
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    learner = Learner(
        settings.learner, settings.storage, bus, load_prompt_dir(settings.prompts.dir), policy=None
    )
    async with learner:
        for i in range(60):
            await bus.publish(
                execution(f"x{i}", variant="ab"[i % 2], seconds=i, latency_ms=100.0 + i)
            )
            await bus.publish(
                feedback(f"x{i}", value=i % 4 != 0 if i % 2 else i % 4 == 0, seconds=i + 1)
            )
        await learner.caught_up()
        yield settings, learner, bus
    await bus.close()


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_stats_prints_variants_leader_and_recommendation(
    running: tuple[Settings, Learner, JetStreamBus],
    config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = await cli(capsys, "stats", "--config", str(config), "--json")
    assert code == 0
    report = json.loads(out)
    [prompt] = report["prompts"]
    assert report["learner"]["lease"]["state"] == "active"  # the in-process learner holds it
    assert report["learner"]["counters"]["dead_letters"] == 0
    assert (prompt["prompt_id"], prompt["champion"], prompt["leader"]) == ("greet", "a", "b")
    b = next(v for v in prompt["variants"] if v["variant"] == "b")
    assert (b["n"], b["reward_mean"], b["executions"]) == (30, 1.0, 30)
    assert prompt["recommendation"]
    code, out, _ = await cli(capsys, "stats", "--config", str(config))
    assert code == 0 and "leader b" in out and "P(BEST)" in out
    assert "learner lease: active, held by" in out and "0 dead-lettered events" in out


async def test_replay_is_identical_then_notices_a_tampered_row(
    running: tuple[Settings, Learner, JetStreamBus],
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, learner, _ = running
    code, out, _ = await cli(capsys, "replay", "--config", str(config), "--json")
    report = json.loads(out)
    assert code == 0, report
    assert report["identical"] and report["tables"]["executions"] == 60
    await learner.stop()
    with sqlite3.connect(tmp_path / "learner.db") as conn:
        conn.execute("update arm_stats set rewarded = rewarded + 1 where variant = 'b'")
    code, out, _ = await cli(capsys, "replay", "--config", str(config))
    assert code == 1
    assert "arm_stats" in out and "DIFFERS" in out and "NOT identical" in out


async def test_promote_rollback_and_pause_through_the_learner(
    running: tuple[Settings, Learner, JetStreamBus],
    config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = await cli(capsys, "promote", "greet", "b", "--config", str(config))
    assert code == 0 and "VariantPromoted" in out
    code, _, err = await cli(capsys, "promote", "greet", "zzz", "--config", str(config))
    assert code == 1 and "no variant 'zzz' in 'greet'; its variants: a, b" in err
    code, out, _ = await cli(capsys, "rollback", "greet", "--config", str(config))
    assert code == 0 and "VariantRolledBack" in out
    code, out, _ = await cli(capsys, "pause", "greet", "--config", str(config))
    assert code == 0 and "ExplorationPaused" in out
    code, _, err = await cli(capsys, "pause", "greet", "--config", str(config))
    assert code == 1 and "already paused" in err


async def test_lifecycle_moves_through_the_learner_and_refusals_exit_1(
    running: tuple[Settings, Learner, JetStreamBus],
    config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    opts = ["--config", str(config)]
    code, out, _ = await cli(
        capsys, "prompts", "deprecate", "greet", "b", "--reason", "too long", *opts
    )
    assert code == 0 and "VariantLifecycleChanged" in out
    code, _, err = await cli(capsys, "promote", "greet", "b", *opts)
    assert code == 1 and "is deprecated and cannot be promoted" in err
    code, _, err = await cli(capsys, "prompts", "archive", "greet", "a", *opts)
    assert code == 1 and "'a' is the champion" in err
    code, out, _ = await cli(capsys, "prompts", "archive", "greet", "b", "--actor", "bob", *opts)
    assert code == 0 and "VariantLifecycleChanged" in out
    code, out, _ = await cli(capsys, "prompts", "activate", "greet", "b", *opts)
    assert code == 0
    code, out, _ = await cli(capsys, "promote", "greet", "b", *opts)
    assert code == 0 and "VariantPromoted" in out


async def test_a_command_for_a_prompt_that_does_not_exist_is_refused_with_what_exists(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No learner runs: before, this printed "sent" and exited 0.
    opts = ["--config", str(config), "--wait", "0.2"]
    code, out, err = await cli(capsys, "promote", "summarize", "v2", *opts)
    assert code == 1 and "sent" not in out
    assert "no prompt 'summarize'; prompts that exist: greet" in err
    code, out, err = await cli(capsys, "rollback", "summarize", *opts)
    assert code == 1 and "no prompt 'summarize'" in err
    code, out, err = await cli(capsys, "prompts", "archive", "greet", "v2", *opts)
    assert code == 1 and "no variant 'v2' in 'greet'; its variants: a, b" in err


LONG = "b_with_a_long_descriptive_name_from_breeding"


async def test_stats_names_its_two_counts_fits_long_names_and_crowns_no_empty_leader(
    config: Path, nats_server: NatsServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "prompts" / "greet.toml").write_text(
        PROMPT.replace('name = "b"', f'name = "{LONG}"')
    )
    settings = load_settings(config)
    bus = JetStreamBus(url=nats_server.url)
    await bus.start()
    learner = Learner(
        settings.learner, settings.storage, bus, load_prompt_dir(settings.prompts.dir), policy=None
    )
    try:
        async with learner:
            for i in range(6):  # calls, and no feedback at all yet
                await bus.publish(execution(f"x{i}", variant=("a", LONG)[i % 2], seconds=i))
            await learner.caught_up()
            code, out, _ = await cli(capsys, "stats", "--config", str(config), "--json")
            [prompt] = json.loads(out)["prompts"]
            assert code == 0 and prompt["leader"] is None
            assert {v["variant"]: (v["executions"], v["n"]) for v in prompt["variants"]} == {
                "a": (3, 0),
                LONG: (3, 0),
            }
            code, out, _ = await cli(capsys, "stats", "--config", str(config))
    finally:
        await bus.close()
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if "VARIANT" in line)
    row = next(line for line in lines if LONG in line)
    assert "CALLS" in header and "REWARDED" in header and " N " not in header
    # Every column stays under its heading: the long name does not push the row out.
    assert len(row) == len(header)
    assert row.index("challenger") == header.index("STATUS")
    assert "leader - (no variant has rewarded calls yet)" in out
    assert "REWARDED: calls with feedback" in out
