"""The CLI's tables (``stats``, ``analytics``, ``prompts list|history``, ``dataset list``,
``experiment list``, ``replay``): rich tables, one look for all of them.

Headings over a rule, no borders, so a table still reads well through ``grep`` and in a
log. Cells are plain text, never rich markup: variant names and variable values are free
text, and ``[bold]`` in a name prints as itself. Piped or captured (not a terminal), the
width is not the 80 columns rich assumes: a table keeps its natural width instead of
wrapping its cells. ``--json`` is the output for programs; these tables are for people.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported by the commands that print, not by every CLI start
    from rich.console import Console

UNBOUNDED_WIDTH = 10_000
"""The console width when stdout is no terminal: wide enough for any of our tables."""


def console() -> Console:
    """A console on stdout: the terminal's width, or :data:`UNBOUNDED_WIDTH` when piped."""
    from rich.console import Console

    out = Console(highlight=False)
    if out.is_terminal:
        return out
    return Console(highlight=False, width=UNBOUNDED_WIDTH)


def print_table(
    headings: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    right: Collection[str] = (),
    indent: int = 0,
) -> None:
    """Print ``rows`` under ``headings``; the columns named in ``right`` (numbers) are
    right-aligned, and the table is indented by ``indent`` spaces."""
    from rich import box
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for heading in headings:
        table.add_column(heading, justify="right" if heading in right else "left")
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    out = console()
    with out.capture() as captured:
        out.print(Padding(table, (0, 0, 0, indent), expand=False) if indent else table)
    # rich pads every cell to its column's width; trailing blanks help no reader.
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))


def figure(value: object, spec: str = ".3f") -> str:
    """A table cell for a figure that may be missing: ``-`` for None."""
    return "-" if value is None else format(value, spec)
