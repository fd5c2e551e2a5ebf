"""Column widths shared by the CLI's plain-text tables (``stats``, ``prompts history``)."""

from __future__ import annotations

from collections.abc import Iterable


def name_width(names: Iterable[str], least: int = len("VARIANT")) -> int:
    """Width of a name column: its longest entry (or heading) and two spaces of gutter.

    Variant names are free text (bred ones carry a generation suffix), so a fixed width
    would let a long name push every later column out of line.
    """
    return max([least, *(len(n) for n in names)]) + 2
