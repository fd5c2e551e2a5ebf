"""`promptlab demo`, as a newcomer runs it: a fresh process, twice in a row, any directory."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def _demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTLAB_")}
    return subprocess.run(
        [sys.executable, "-m", "promptlab", "demo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def test_demo_promotes_the_truly_better_variant_twice_in_a_row(tmp_path: Path) -> None:
    for run in range(2):  # the second run finds the first run's data dir
        result = _demo(tmp_path, "--json", "--seed", "4")
        assert result.returncode == 0, result.stderr[-2000:]
        summary = json.loads(result.stdout)
        assert summary["label"].startswith("simulated application"), run
        assert summary["errors"] == 0
        assert summary["promoted_truly_best"] is True, summary
        promoted = [d for d in summary["decisions"] if d["type"] == "promoted"]
        assert promoted and promoted[0]["variant"] == summary["truly_best"]
        assert promoted[0]["evidence"]["p_value"] <= 0.05
        assert summary["reward_per_call"] > summary["equal_split_reward_per_call"]
        # Continuous breeding is on in the demo: a bred variant entered live traffic.
        assert any(b["entered_traffic"] and b["calls"] > 0 for b in summary["bred"]), summary
    assert (tmp_path / ".promptlab" / "demo" / "promptlab.db").is_file()


def test_headless_demo_prints_progress_and_summary(tmp_path: Path) -> None:
    result = _demo(tmp_path, "--headless", "--requests", "400", "--seed", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "simulated application" in out
    assert "[  400/400]" in out
    assert "summary (" in out and "reward per call" in out


def _summary_block(out: str) -> str:
    return out[out.index("\nsummary (") :]


def test_the_same_seed_prints_the_same_summary(tmp_path: Path) -> None:
    runs = [_demo(tmp_path, "--headless", "--seed", "3", "--requests", "500") for _ in range(2)]
    for result in runs:
        assert result.returncode == 0, result.stderr[-2000:]
    first, second = (_summary_block(r.stdout) for r in runs)
    assert first == second
    # A different seed is a different run (the test would pass vacuously otherwise).
    other = _demo(tmp_path, "--headless", "--seed", "4", "--requests", "500")
    assert other.returncode == 0, other.stderr[-2000:]
    assert _summary_block(other.stdout) != first


async def test_quitting_the_tui_early_summarises_what_happened_so_far(tmp_path: Path) -> None:
    from textual.app import App

    from promptlab.demo import run_demo
    from promptlab.settings import Settings

    async def quit_after_some_traffic(app: App[None]) -> None:
        async with app.run_test(size=(120, 30)) as pilot:
            deadline = asyncio.get_running_loop().time() + 60

            def seen_traffic() -> bool:  # the TUI has shown a stats snapshot with calls
                prompt = app.state.prompts.get("support_reply")  # type: ignore[attr-defined]
                return bool(
                    prompt and prompt.stats and any(v.executions for v in prompt.variants())
                )

            while not seen_traffic():
                assert asyncio.get_running_loop().time() < deadline
                await pilot.pause(0.05)
            await pilot.press("q")

    summary = await run_demo(
        Settings(),
        data_dir=tmp_path / "demo",
        requests=100_000,  # far more than it will get to
        concurrency=8,
        seed=1,
        on_line=lambda _: None,
        with_tui=True,
        run_tui=quit_after_some_traffic,
    )
    assert 0 < summary.requests < 100_000
    assert summary.ok == summary.requests and summary.requests % 100 == 0  # whole waves
    assert sum(summary.traffic_share.values()) == pytest.approx(1.0, abs=1e-3)
    assert summary.reward_per_call > 0


async def test_the_tui_demo_stays_live_after_its_traffic_until_the_user_quits(
    tmp_path: Path,
) -> None:
    from polling import until
    from textual.app import App

    from promptlab.demo import DEMO_PROMPT_ID, run_demo
    from promptlab.settings import Settings

    requests = 300
    seen: dict[str, object] = {}

    async def use_after_the_traffic(app: App[None]) -> None:
        state = app.state  # type: ignore[attr-defined]

        def prompt() -> Any:
            return state.prompts.get(DEMO_PROMPT_ID)

        def calls() -> int:
            p = prompt()
            return sum(v.executions for v in p.variants()) if p and p.stats else 0

        def analytics_shown() -> bool:
            snapshot = prompt().analytics
            return snapshot is not None and bool(snapshot.interval("hour").periods)

        async with app.run_test(size=(120, 30)) as pilot:
            await until(lambda: calls() >= requests, 120, "the whole traffic in the stats")
            # Analytics appear (the tab said "No analytics yet" for the whole run).
            await until(analytics_shown, 30, "analytics")
            # The learner is still there: its status keeps coming after the traffic...
            after = state.learner_seen_at
            await until(
                lambda: state.learner_seen_at is not None and state.learner_seen_at > after,
                30,
                "a learner status after the traffic",
            )
            seen["health"] = app.health().text  # type: ignore[attr-defined]
            # ...and a command sent from the TUI acts.
            await pilot.press("s")
            await pilot.press("y")
            await until(lambda: prompt().paused, 30, "the pause carried out")
            seen["paused"] = True
            await pilot.press("q")

    summary = await run_demo(
        Settings(),
        data_dir=tmp_path / "demo",
        requests=requests,
        concurrency=8,
        seed=1,
        on_line=lambda _: None,
        with_tui=True,
        run_tui=use_after_the_traffic,
    )
    assert seen["paused"] is True
    assert "learner active" in str(seen["health"]) and "silent" not in str(seen["health"])
    assert summary.requests == requests and summary.ok == requests
