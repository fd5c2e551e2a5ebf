"""Saved experiment reports: a list, and one report's table, interval bars and Pareto plot.

The screens receive the directory (attributes down) and read the saved JSON reports;
they never run anything. ``e`` on the overview opens the list; enter opens a report.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from promptlab.tui.experiment_views import (
    LIST_COLUMNS,
    SavedReport,
    comparisons_text,
    pareto_scatter,
    results_text,
    saved_reports,
    summary_text,
)


class ExperimentsScreen(Screen[None]):
    """The reports saved under ``directory`` (``.promptlab/experiments`` by default)."""

    BINDINGS = [
        Binding("enter", "open", "Open", show=True),
        Binding("g", "reload", "Reload"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.reports: dict[str, SavedReport] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable[str] = DataTable(id="experiments", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="experiments-empty")
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        table = self.query_one("#experiments", DataTable)
        table.clear(columns=True)
        table.add_columns(*LIST_COLUMNS)
        self.reports = {}
        for report in saved_reports(self.directory):
            key = str(report.path)
            self.reports[key] = report
            table.add_row(*report.row(), key=key)
        empty = self.query_one("#experiments-empty", Static)
        empty.display = not self.reports
        empty.update(f"No saved reports under {self.directory}. Run: promptlab experiment run FILE")

    def _open(self, key: str | None) -> None:
        if key is not None and key in self.reports:
            self.app.push_screen(ExperimentReportScreen(self.reports[key]))

    def action_open(self) -> None:
        table = self.query_one("#experiments", DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            self._open(key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self._open(event.row_key.value)


class ExperimentReportScreen(Screen[None]):
    """One report: summary, per-point table with 95% interval bars, comparisons, Pareto plot."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, report: SavedReport) -> None:
        super().__init__()
        self.report = report

    def compose(self) -> ComposeResult:
        data = self.report.data
        yield Header()
        with VerticalScroll(id="experiment-report"):
            yield Static(summary_text(data), id="experiment-summary")
            yield Static("[b]Quality with 95% intervals[/b] (★ best, ◆ Pareto front)")
            yield Static(results_text(data), id="experiment-results")
            yield Static("[b]Paired comparisons[/b] (Holm-corrected)")
            yield Static(comparisons_text(data), id="experiment-comparisons")
            yield Static("[b]Pareto front[/b]: quality against cost")
            yield Static(pareto_scatter(data), id="experiment-pareto")
        yield Footer()
