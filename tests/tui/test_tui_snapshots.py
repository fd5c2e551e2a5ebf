"""Snapshot tests (pytest-textual-snapshot) of both screens with the fixed sample data.

Nothing on screen depends on the wall clock: times come from the events, the status line
from a frozen clock. Update after an intended change with ``--snapshot-update``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_helpers import FakeClock, until

from promptlab.events.memory import MemoryBus
from promptlab.tui import PromptLabApp, make_tui, sample
from promptlab.tui.screens.detail import DetailScreen

SnapCompare = Callable[..., bool]


def sample_app() -> PromptLabApp:
    bus = MemoryBus()
    asyncio.run(sample.load(bus))
    return make_tui(bus, clock=FakeClock())


async def overview_ready(pilot: Pilot[Any]) -> None:
    app = pilot.app
    await until(pilot, lambda: app.screen.query_one("#prompts", DataTable).row_count == 3)
    state = app.state  # type: ignore[attr-defined]
    await until(
        pilot, lambda: "sample-promotion-1" in state.prompts["support-reply"].live_decisions
    )
    await pilot.pause(0.3)


def open_detail(*keys: str) -> Callable[[Pilot[Any]], object]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await overview_ready(pilot)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, DetailScreen))
        await pilot.press(*keys)
        await pilot.pause(0.5)

    return run_before


def test_overview(snap_compare: SnapCompare) -> None:
    assert snap_compare(sample_app(), terminal_size=(120, 30), run_before=overview_ready)


def test_overview_80x24(snap_compare: SnapCompare) -> None:
    assert snap_compare(sample_app(), terminal_size=(80, 24), run_before=overview_ready)


def test_detail_trends(snap_compare: SnapCompare) -> None:
    assert snap_compare(sample_app(), terminal_size=(120, 34), run_before=open_detail("1"))


def test_detail_posteriors_80x24(snap_compare: SnapCompare) -> None:
    assert snap_compare(sample_app(), terminal_size=(80, 24), run_before=open_detail("2"))


def test_detail_decisions(snap_compare: SnapCompare) -> None:
    assert snap_compare(sample_app(), terminal_size=(100, 30), run_before=open_detail("5"))


def test_detail_analytics(snap_compare: SnapCompare) -> None:
    assert snap_compare(sample_app(), terminal_size=(120, 44), run_before=open_detail("7"))


def test_detail_analytics_days_80x24(snap_compare: SnapCompare) -> None:
    assert snap_compare(sample_app(), terminal_size=(80, 24), run_before=open_detail("7", "i"))
