"""Small widgets and helpers both screens use: the status line and in-place table updates."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable, Static
from textual.widgets.data_table import RowDoesNotExist

from promptlab.tui.health import Health

Row = tuple[str, Sequence[object]]
"""``(row key, cells)``."""


class StatusLine(Static):
    """One line at the bottom: is the picture live, and what is it made of."""

    DEFAULT_CSS = """
    StatusLine { height: 1; padding: 0 1; background: $panel; }
    StatusLine.-warn { background: $warning 40%; }
    StatusLine.-error { background: $error 50%; }
    """

    def show(self, health: Health, detail: str) -> None:
        self.set_class(health.level == "warn", "-warn")
        self.set_class(health.level == "error", "-error")
        mark = {"ok": ("●", "green"), "warn": ("▲", "yellow"), "error": ("✖", "red")}[health.level]
        line = Text.assemble((mark[0] + " ", mark[1]), (health.text, "bold"))
        if detail:
            line.append("  ·  " + detail, style="dim")
        self.update(line)


def sync_table(
    table: DataTable[object], columns: Sequence[tuple[str, str]], rows: Sequence[Row]
) -> None:
    """Make ``table`` show ``rows`` while keeping the cursor on the same row key.

    When the keys are the same as before (the common case: numbers moved), cells are
    updated in place, which keeps scroll position and cursor and avoids flicker. When
    rows came or went, the table is rebuilt and the cursor returned to its key.
    """
    if not table.columns:
        for key, label in columns:
            table.add_column(label, key=key)
    keys = [key for key, _ in rows]
    current = [str(row.key.value) for row in table.ordered_rows]
    if keys == current:
        column_keys = [key for key, _ in columns]
        for key, cells in rows:
            old = table.get_row(key)
            for column, old_value, new_value in zip(column_keys, old, cells, strict=True):
                if _differs(old_value, new_value):
                    table.update_cell(key, column, new_value, update_width=True)
        return
    selected = selected_key(table)
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if selected is not None:
        try:
            table.move_cursor(row=table.get_row_index(selected), animate=False)
        except RowDoesNotExist:
            pass


def _differs(old: object, new: object) -> bool:
    if isinstance(old, Text) and isinstance(new, Text):
        return old.plain != new.plain or old.spans != new.spans
    return old != new


def selected_key(table: DataTable[object]) -> str | None:
    """Key of the row under the cursor, or None for an empty table."""
    if table.row_count == 0:
        return None
    try:
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
    except Exception:  # cursor outside the rows while the table is being rebuilt
        return None
    return None if row_key.value is None else str(row_key.value)
