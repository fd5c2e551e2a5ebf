"""One prompt in depth: variants, trends, posteriors, lineage, live feed, decisions,
template, and analytics by period."""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane, Tree
from textual.widgets.tree import TreeNode

from promptlab.events import LifecycleCommand, PromoteCommand
from promptlab.events.kinds import VariantLifecycle
from promptlab.tui.analytics_views import INTERVALS, analytics_text
from promptlab.tui.screens.base import LiveScreen
from promptlab.tui.state import LabState, LivePrompt
from promptlab.tui.views import (
    FEED_COLUMNS,
    VARIANT_COLUMNS,
    LineageNode,
    decisions_text,
    feed_row,
    lineage,
    lineage_signature,
    posteriors_text,
    summary_line,
    template_text,
    trends_text,
    variant_row,
)
from promptlab.tui.widgets import StatusLine, selected_key, sync_table

TABS = ("trends", "posteriors", "lineage", "live", "decisions", "template", "analytics")


class DetailScreen(LiveScreen):
    """The detail of ``prompt_id``; the selected variant is the variants table's cursor row."""

    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("p", "promote", "Promote"),
        # Lifecycle moves (shifted, so a stray key cannot retire a variant); kept out of
        # the footer, which has no room left at 80 columns.
        Binding("A", "lifecycle('active')", "Activate", show=False),
        Binding("D", "lifecycle('deprecated')", "Deprecate", show=False),
        Binding("X", "lifecycle('archived')", "Archive", show=False),
        Binding("[", "version(1)", "Older version", show=False),
        Binding("]", "version(-1)", "Newer version", show=False),
        # In the footer only while the analytics tab is shown (see check_action).
        Binding("i", "interval", "Period"),
        *LiveScreen.BINDINGS,
        *(
            Binding(str(i), f"tab('{tab}')", tab.title(), show=False)
            for i, tab in enumerate(TABS, 1)
        ),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, prompt_id: str, state: LabState, *, actor: str) -> None:
        super().__init__(state, actor=actor)
        self.prompt_id = prompt_id
        self._lineage_drawn: object = None
        self._template_drawn: tuple[str | None, int, int] | None = None
        self._back = 0
        """How many versions back the template tab shows (0: the current one)."""
        self.interval = INTERVALS[0]
        """The period of the analytics tab (``i`` cycles through hour and day)."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        variants: DataTable[object] = DataTable(id="variants", cursor_type="row")
        variants.fixed_columns = 1
        yield variants
        with TabbedContent(id="tabs", initial="trends"):
            with TabPane("1 Trends", id="trends"), VerticalScroll():
                yield Static(id="trends-plot")
            with TabPane("2 Posteriors", id="posteriors"), VerticalScroll():
                yield Static(id="posteriors-plot")
            with TabPane("3 Lineage", id="lineage"):
                yield Tree("variants", id="lineage-tree")
            with TabPane("4 Live", id="live"):
                feed: DataTable[object] = DataTable(
                    id="feed", cursor_type="none", zebra_stripes=True
                )
                yield feed
            with TabPane("5 Decisions", id="decisions"), VerticalScroll():
                yield Static(id="decisions-log")
            with TabPane("6 Template", id="template"), VerticalScroll():
                yield Static(id="template-text")
            with TabPane("7 Analytics", id="analytics"), VerticalScroll():
                yield Static(id="analytics-plot")
        yield StatusLine(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = self.prompt_id
        self.query_one("#variants", DataTable).focus()

    # ------------------------------------------------------------------ drawing

    @property
    def prompt(self) -> LivePrompt:
        return self.state.prompt(self.prompt_id)

    def selected_variant(self) -> str | None:
        return selected_key(self.query_one("#variants", DataTable))

    def show(self, state: LabState) -> None:
        prompt = state.prompt(self.prompt_id)
        self.sub_title = "exploration paused" if prompt.paused else ""
        self.query_one("#summary", Static).update(summary_line(prompt, state.show_archived))
        variants = prompt.shown_variants(state.show_archived)
        sync_table(
            self.query_one("#variants", DataTable),
            VARIANT_COLUMNS,
            [(v.variant, variant_row(v)) for v in variants],
        )
        width = self._plot_width()
        self.query_one("#trends-plot", Static).update(trends_text(prompt, width))
        self.query_one("#posteriors-plot", Static).update(posteriors_text(prompt, width))
        self._draw_analytics(prompt, width)
        self._draw_lineage(prompt)
        feed = list(reversed(prompt.executions))
        sync_table(
            self.query_one("#feed", DataTable),
            FEED_COLUMNS,
            [(f"{row.execution_id}", feed_row(row)) for row in feed],
        )
        self.query_one("#decisions-log", Static).update(decisions_text(prompt.decisions()))
        self._draw_template(prompt, force=True)

    def _draw_analytics(self, prompt: LivePrompt, width: int) -> None:
        self.query_one("#analytics-plot", Static).update(
            analytics_text(prompt, self.interval, width)
        )

    def _plot_width(self) -> int:
        width = self.query_one("#tabs", TabbedContent).size.width
        return max(30, (width or self.app.size.width) - 4)

    def _draw_lineage(self, prompt: LivePrompt) -> None:
        signature = lineage_signature(prompt)
        if signature == self._lineage_drawn:
            return
        self._lineage_drawn = signature
        tree: Tree[str] = self.query_one("#lineage-tree", Tree)
        tree.clear()
        tree.root.set_label(
            Text.assemble(
                (prompt.prompt_id, "bold"), ("  lineage: parent → child ← strategy", "dim")
            )
        )

        def add(parent: TreeNode[str], node: LineageNode) -> None:
            if node.children:
                branch = parent.add(node.label, data=node.variant, expand=True)
                for child in node.children:
                    add(branch, child)
            else:
                parent.add_leaf(node.label, data=node.variant)

        for root in lineage(prompt):
            add(tree.root, root)
        tree.root.expand()

    def _draw_template(self, prompt: LivePrompt, *, force: bool = False) -> None:
        variant = self.selected_variant()
        registered = prompt.templates.get(variant) if variant else None
        key = (variant, id(registered), self._back)
        if not force and key == self._template_drawn:
            return
        self._template_drawn = key
        self.query_one("#template-text", Static).update(template_text(prompt, variant, self._back))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "variants":
            self._back = 0
            self._draw_template(self.prompt)

    # ------------------------------------------------------------------ actions

    def current_prompt(self) -> str | None:
        return self.prompt_id

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()  # "i" shows in the footer on the analytics tab only

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "interval":
            tabs = self.query("#tabs")  # empty until composed
            return bool(tabs) and tabs.first(TabbedContent).active == "analytics"
        return True

    def action_interval(self) -> None:
        """Show the analytics tab at the next interval (hour, day)."""
        self.interval = INTERVALS[(INTERVALS.index(self.interval) + 1) % len(INTERVALS)]
        self._draw_analytics(self.prompt, self._plot_width())

    def action_version(self, step: int) -> None:
        """Step the template tab one version older (1) or newer (-1)."""
        variant = self.selected_variant()
        count = len(self.prompt.versions.get(variant, [])) if variant else 0
        self._back = min(max(0, self._back + step), max(0, count - 1))
        self.query_one(TabbedContent).active = "template"
        self._draw_template(self.prompt)

    def action_lifecycle(self, status: VariantLifecycle) -> None:
        variant = self.selected_variant()
        if variant is None:
            self.notify("Select a variant first.", severity="warning")
            return
        verb = {"active": "Activate", "deprecated": "Deprecate", "archived": "Archive"}[status]
        self.request(
            LifecycleCommand(
                prompt_id=self.prompt_id,
                variant=variant,
                status=status,
                actor=self.actor,
                reason=f"{verb.lower()}d from the TUI",
            ),
            question=f"{verb} [b]{escape(variant)}[/b] of [b]{escape(self.prompt_id)}[/b]?\n\n"
            "The learner may refuse (the champion stays active).",
            description=f"{verb.lower()} {variant} on {self.prompt_id}",
        )

    def action_promote(self) -> None:
        variant = self.selected_variant()
        if variant is None:
            self.notify("Select a variant to promote.", severity="warning")
            return
        prompt = self.prompt
        if variant == prompt.champion:
            self.notify(
                f"{variant} is already the champion of {self.prompt_id}.", severity="warning"
            )
            return
        stats = prompt.variant(variant)
        odds = ""
        if stats is not None and stats.p_beats_champion is not None:
            odds = f"\nP(beats champion) = {stats.p_beats_champion:.2f}."
        self.request(
            PromoteCommand(
                prompt_id=self.prompt_id,
                variant=variant,
                actor=self.actor,
                reason="promoted from the TUI",
            ),
            question=f"Promote [b]{escape(variant)}[/b] to champion of [b]{escape(self.prompt_id)}[/b]?{odds}\n\n"
            f"It replaces {escape(prompt.champion or 'the current champion')}. The learner may refuse.",
            description=f"promote {variant} on {self.prompt_id}",
        )
