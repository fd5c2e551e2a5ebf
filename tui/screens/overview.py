"""The overview: one row per prompt, how its experiment stands. Enter opens the prompt."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from promptlab.tui.messages import OpenPrompt
from promptlab.tui.screens.base import LiveScreen
from promptlab.tui.state import LabState
from promptlab.tui.views import OVERVIEW_COLUMNS, overview_row, recent_decisions_text
from promptlab.tui.widgets import StatusLine, selected_key, sync_table


class OverviewScreen(LiveScreen):
    """Every prompt the learner reports on, sorted by id."""

    BINDINGS = [
        # Priority: the table's own (hidden) Enter binding would hide this one from the footer.
        Binding("enter", "open", "Open", key_display="enter", priority=True),
        *LiveScreen.BINDINGS,
        Binding("q", "app.quit", "Quit"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable[object] = DataTable(
            id="prompts", cursor_type="row", zebra_stripes=True, header_height=2
        )
        table.fixed_columns = 1
        yield table
        yield Static("", id="overview-empty")
        with VerticalScroll(id="recent"):
            yield Static(id="recent-decisions")
        yield StatusLine(id="status")
        yield Footer()

    def show(self, state: LabState) -> None:
        table = self.query_one("#prompts", DataTable)
        prompts = state.sorted_prompts()
        rows = [(p.prompt_id, overview_row(p, state.show_archived)) for p in prompts]
        sync_table(table, OVERVIEW_COLUMNS, rows)
        self.query_one("#recent-decisions", Static).update(recent_decisions_text(prompts))
        empty = self.query_one("#overview-empty", Static)
        empty.display = not prompts
        if not prompts:
            empty.update(
                "No prompts yet. They appear when the learner publishes its first stats "
                "snapshot or a sidecar registers its variants."
            )

    def current_prompt(self) -> str | None:
        return selected_key(self.query_one("#prompts", DataTable))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(OpenPrompt(str(event.row_key.value)))

    def action_open(self) -> None:
        prompt_id = self.current_prompt()
        if prompt_id is not None:
            self.post_message(OpenPrompt(prompt_id))
