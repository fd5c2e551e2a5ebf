"""Archived variants are hidden from the TUI's prompt and variant lists; ``a`` shows them
(pilot), and the detail screen says how many are hidden (snapshot)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_helpers import FakeClock, screen_text, until

from promptlab.events.memory import MemoryBus
from promptlab.events.snapshots import StatsSnapshot, VariantStats
from promptlab.events.subjects import Bucket
from promptlab.tui import PromptLabApp, make_tui, sample
from promptlab.tui.screens.detail import DetailScreen

SnapCompare = Callable[..., bool]

ARCHIVED = StatsSnapshot(
    prompt_id="faq",
    version=4,
    champion="plain",
    variants=[
        VariantStats(variant="plain", status="champion", model="simulated/a", executions=400,
                     traffic_share=0.8, reward_mean=0.61),
        VariantStats(variant="kind", status="challenger", model="simulated/b", executions=90,
                     traffic_share=0.2, reward_mean=0.58, lifecycle="deprecated"),
        VariantStats(variant="old", status="challenger", model="simulated/c", executions=300,
                     lifecycle="archived", reward_mean=0.40),
    ],
)  # fmt: skip


async def _bus() -> MemoryBus:
    bus = MemoryBus()
    await sample.load(bus)
    await bus.kv_put(str(Bucket.STATS), ARCHIVED.prompt_id, ARCHIVED.encode())
    return bus


def _rows(app: PromptLabApp, table_id: str) -> list[str]:
    """Row keys of a table on the current screen (none while it is being composed)."""
    tables = app.screen.query(table_id)
    if not tables:
        return []
    table = tables.first(DataTable)
    return [str(key.value) for key in table.rows]


async def _open_faq(pilot: Pilot[Any]) -> None:
    app: PromptLabApp = pilot.app  # type: ignore[assignment]
    await until(pilot, lambda: "faq" in _rows(app, "#prompts"))
    await pilot.pause(0.2)
    await pilot.press(*["down"] * _rows(app, "#prompts").index("faq"), "enter")
    await until(pilot, lambda: isinstance(app.screen, DetailScreen))
    await until(pilot, lambda: len(_rows(app, "#variants")) == 2)


async def test_a_toggles_archived_variants_in_both_lists() -> None:
    app = make_tui(await _bus(), clock=FakeClock())
    async with app.run_test(size=(120, 34)) as pilot:
        await until(pilot, lambda: "faq" in _rows(app, "#prompts"))
        overview = app.screen.query_one("#prompts", DataTable)
        live = lambda: str(overview.get_row("faq")[2])  # noqa: E731
        await until(pilot, lambda: live() == "1")  # kind (deprecated) counts, old does not
        await pilot.press("a")
        await until(pilot, lambda: live() == "2")
        await pilot.press("a")
        await until(pilot, lambda: live() == "1")

        await _open_faq(pilot)
        assert _rows(app, "#variants") == ["plain", "kind"]
        assert "1 archived hidden (a toggles)" in screen_text(app)
        await pilot.press("a")
        await until(pilot, lambda: _rows(app, "#variants") == ["plain", "kind", "old"])
        assert "1 archived shown (a toggles)" in screen_text(app)
        await pilot.press("a")
        await until(pilot, lambda: _rows(app, "#variants") == ["plain", "kind"])


def test_detail_with_an_archived_variant_hidden(snap_compare: SnapCompare) -> None:
    bus = asyncio.run(_bus())
    app = make_tui(bus, clock=FakeClock())

    async def run_before(pilot: Pilot[Any]) -> None:
        await _open_faq(pilot)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(120, 30), run_before=run_before)
