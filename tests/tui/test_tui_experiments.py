"""The Experiments screen: saved reports listed, one opened with its bars and Pareto plot."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import DataTable
from tui_helpers import FakeClock, screen_text, until

from promptlab.events.memory import MemoryBus
from promptlab.lab.objectives import Constraint, Objective
from promptlab.lab.report import build_report
from promptlab.lab.results import Trial
from promptlab.tui import make_tui
from promptlab.tui.experiment_views import interval_bar, pareto_scatter
from promptlab.tui.screens.experiments import ExperimentReportScreen, ExperimentsScreen


def report_json(directory: Path) -> dict[str, object]:
    trials = []
    for variant, model, base, cost in (
        ("plain", "m/cheap", 0.5, 0.001),
        ("rich", "m/dear", 0.8, 0.004),
    ):
        for case in range(4):
            trials.append(
                Trial(point=f"{variant} @ {model}", variant=variant, version="v", model=model,
                      params={}, case=f"c{case}", repeat=0, execution_id=f"{variant}{case}",
                      quality=base + case * 0.05, cost_usd=cost, latency_ms=100.0)
            )  # fmt: skip
    report = build_report(
        trials, experiment="demo-exp", prompt="summarize",
        objectives=[Objective("quality")], constraints=[Constraint.parse("quality", ">= 0.6")],
    )  # fmt: skip
    data = report.to_json()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "demo-exp.report.json").write_text(json.dumps(data))
    (directory / "broken.report.json").write_text("{not json")
    return data


def test_interval_bars_and_the_scatter_mark_what_they_should(tmp_path: Path) -> None:
    assert interval_bar((0.2, 0.6), 0.4, width=11) == "  [─●─]    "
    data = report_json(tmp_path)
    for row in data["results"]:  # type: ignore[attr-defined]
        low, high = row["quality_ci"]
        assert 0.0 <= low < row["quality_mean"] < high <= 1.0
        assert row["quality_ci_method"] == "wilson (scores)"
    plot = pareto_scatter(data)
    assert "1 ◆ plain @ m/cheap" in plot and "2 ◆ rich @ m/dear" in plot


async def test_e_lists_saved_reports_and_enter_opens_one(tmp_path: Path) -> None:
    report_json(tmp_path / "exp")
    bus = MemoryBus()
    app = make_tui(bus, clock=FakeClock(), experiments_dir=tmp_path / "exp")
    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, ExperimentsScreen))
        table = app.screen.query_one("#experiments", DataTable)
        await until(pilot, lambda: table.row_count == 1)  # the broken file is skipped
        assert [str(c) for c in table.get_row_at(0)][:4] == [
            "demo-exp",
            "summarize",
            "8/8",
            "rich @ m/dear",
        ]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ExperimentReportScreen))
        await until(pilot, lambda: "Pareto front" in screen_text(app))
        text = screen_text(app)
        assert "rich @ m/dear ★ ◆" in text and "●" in text and "[" in text
        assert "best: rich @ m/dear" in text
        # 4 cases, rich ahead on each: the exact test's p is 2/16, and the screen says so.
        assert "best, but not significantly ahead of plain @ m/cheap" in text
        assert "sign-flip (exact)" in text and "min p 0.125" in text
        assert "wilson (scores)" in text  # every interval names its method
        await pilot.press("escape", "escape")
        await until(
            pilot, lambda: not isinstance(app.screen, ExperimentsScreen | ExperimentReportScreen)
        )
