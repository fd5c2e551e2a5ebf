"""The overview an operator reads: who is a challenger, widths at 120 columns, the footer."""

from __future__ import annotations

from textual.widgets import DataTable
from tui_helpers import FakeClock, screen_text, until

from promptlab.events import KVEntry
from promptlab.events.memory import MemoryBus
from promptlab.events.snapshots import StatsSnapshot, VariantStats
from promptlab.events.subjects import Bucket
from promptlab.tui import make_tui, sample
from promptlab.tui.state import LabState
from promptlab.tui.views import challenger_traffic, challengers, overview_row


def _snapshot(champion: str, champion_status: str, names: list[str], prompt: str) -> StatsSnapshot:
    return StatsSnapshot(
        prompt_id=prompt,
        version=1,
        champion=champion,
        variants=[
            VariantStats(
                variant=name,
                status=champion_status if name == champion else "challenger",
                model="simulated/a",
                executions=100,
                traffic_share=0.8 if name == champion else 0.2 / (len(names) - 1),
            )
            for name in names
        ],
    )


def test_the_champion_on_probation_is_not_a_challenger() -> None:
    state = LabState()
    snap = _snapshot("v2_new_champ", "probation", ["v1_old", "v2_new_champ", "v3_other"], "p")
    state.apply_stats(KVEntry("p", snap.encode(), 1), now=1.0)
    prompt = state.prompts["p"]
    assert [v.variant for v in challengers(prompt)] == ["v1_old", "v3_other"]
    assert abs((challenger_traffic(prompt) or 0) - 0.2) < 1e-9
    assert str(overview_row(prompt)[2]) == "2"


async def test_long_names_fit_120_columns_and_the_footer_names_enter() -> None:
    bus = MemoryBus()
    await sample.load(bus)
    # The demo's names are longer than the sample's.
    demo = _snapshot(
        "v2_empathetic_steps",
        "probation",
        ["v1_plain", "v2_empathetic_steps", "v3_bullet_points_long"],
        "support_reply_with_a_long_id",
    )
    await bus.kv_put(str(Bucket.STATS), demo.prompt_id, demo.encode())
    app = make_tui(bus, clock=FakeClock())
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.screen.query_one("#prompts", DataTable)
        await until(pilot, lambda: table.row_count == 4)
        await pilot.pause(0.2)
        # No sideways scrolling: every column, the last included, is on screen.
        assert table.virtual_size.width <= table.size.width, (table.virtual_size, table.size)
        text = screen_text(app)
        assert "Last promotion ↑" in text and "or rollback ↓" in text
        assert "enter Open" in text
        assert "v2_empathetic…" in text  # cut in the overview, whole in the detail
        await pilot.press("enter")  # the first row: intent-classify
        await until(pilot, lambda: "intent-classify" in screen_text(app))
