"""The detail screen's analytics tab, driven through Textual's pilot on the in-memory bus
with the sample's analytics snapshot (and updates the learner would write)."""

from __future__ import annotations

from datetime import UTC, datetime

from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_helpers import FakeClock, screen_text, until

from promptlab.events import Bucket
from promptlab.events.memory import MemoryBus
from promptlab.events.snapshots import AnalyticsSnapshot, PeriodSeries, PeriodTotals, VariableValues
from promptlab.tui import PromptLabApp, make_tui, sample
from promptlab.tui.screens.detail import DetailScreen


async def loaded_app() -> tuple[MemoryBus, PromptLabApp]:
    bus = MemoryBus()
    await sample.load(bus)
    return bus, make_tui(bus, clock=FakeClock())


def chart_rows(text: str, variant: str) -> list[str]:
    """The chart lines of ``variant`` (Calls first), not its variants-table row."""
    return [
        line
        for line in text.splitlines()
        if line.startswith(f" {variant} ") and any(ch in line for ch in "▁▂▃▄▅▆▇█·")
    ]


async def open_prompt(pilot: Pilot[None], app: PromptLabApp, downs: int) -> DetailScreen:
    await until(pilot, lambda: app.screen.query_one("#prompts", DataTable).row_count == 3)
    await pilot.press(*(["down"] * downs), "enter")
    await until(pilot, lambda: isinstance(app.screen, DetailScreen))
    screen = app.screen
    assert isinstance(screen, DetailScreen)
    return screen


async def test_the_analytics_tab_charts_hours_and_days_and_the_top_values() -> None:
    _, app = await loaded_app()
    async with app.run_test(size=(120, 60)) as pilot:
        await open_prompt(pilot, app, downs=1)  # support-reply
        assert "i Period" not in screen_text(app)  # the key shows on the analytics tab only
        await pilot.press("7")
        await until(pilot, lambda: "Per hour" in screen_text(app))
        text = screen_text(app)
        for words in (
            "05-14 02:00",
            "05-14 13:00",
            "Calls  (each row on its own scale)",
            "Quality (mean reward)  (scale 0.63–0.75)",  # noqa: RUF001
            "Latency p95",
            "Cost",
            "Most used variable values  05-14 13:00, every variant, 1,591 calls",
            "i Period",
        ):
            assert words in text, words
        calls = chart_rows(text, "concise-v3")[0]
        assert calls.split()[-2:] == ["182", "-19"]  # newest hour and its change
        router = next(line for line in text.splitlines() if "router-x2" in line)
        assert router.split()[-3:] == ["34%", "535", "-56"]
        assert chart_rows(text, "baseline") == []  # no traffic in these hours

        await pilot.press("i")
        await until(pilot, lambda: "Per day" in screen_text(app))
        text = screen_text(app)
        assert "2025-05-08" in text and "2025-05-14" in text
        baseline = chart_rows(text, "baseline")[0]
        assert "·····" in baseline and baseline.split()[-1] == "—"  # retired: gaps, no value now
        await pilot.press("i")
        await until(pilot, lambda: "Per hour" in screen_text(app))
        await pilot.press("1")
        await until(pilot, lambda: "i Period" not in screen_text(app))


async def test_a_new_snapshot_redraws_the_tab_and_a_prompt_without_one_says_so() -> None:
    bus, app = await loaded_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_prompt(pilot, app, downs=0)  # intent-classify: no analytics in the sample
        await pilot.press("7")
        await until(pilot, lambda: "No analytics yet" in screen_text(app))
        start = datetime(2025, 5, 14, 13, tzinfo=UTC)
        fresh = AnalyticsSnapshot(
            prompt_id="intent-classify",
            series=[
                PeriodSeries.model_validate(
                    {
                        "interval": "hour",
                        "periods": [
                            {"variant": "few-shot", "start": start, "end": start, "executions": 7}
                        ],
                        "all_variants": [
                            PeriodTotals(
                                start=start,
                                end=start,
                                executions=7,
                                top_values=[
                                    VariableValues.model_validate(
                                        {
                                            "variable": "locale",
                                            "recorded": 7,
                                            "values": [{"value": "de-CH", "count": 7}],
                                        }
                                    )
                                ],
                            )
                        ],
                    }
                )
            ],
        )
        await bus.kv_put(Bucket.ANALYTICS.value, "intent-classify", fresh.encode())
        await until(pilot, lambda: "de-CH" in screen_text(app))
        few_shot = chart_rows(screen_text(app), "few-shot")[0]
        assert few_shot.split()[-1] == "7"
