"""Helpers for the TUI tests: a frozen clock, the screen as plain text, waiting."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree

from rich.cells import cell_len
from textual.app import App
from textual.pilot import Pilot

SVG = "{http://www.w3.org/2000/svg}"
LINE = re.compile(r"-line-(\d+)\)$")
"""The clip path of a run of text in the screenshot ends in its line number."""


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def screen_text(app: App[Any]) -> str:
    """What the terminal shows now, as plain text (toasts and modals included).

    Read from Textual's public screenshot (:meth:`App.export_screenshot`, an SVG): each
    run of text is a ``<text>`` element whose clip path names its line and whose ``x``
    is its column times the cell width (``textLength`` over its characters).
    """
    lines: dict[int, list[tuple[int, str]]] = {}
    for element in ElementTree.fromstring(app.export_screenshot()).iter(f"{SVG}text"):
        length, clip = element.get("textLength"), element.get("clip-path", "")
        found = LINE.search(clip)
        if length is None or found is None or not element.text:
            continue  # the window title, not the terminal's cells
        text = element.text.replace("\xa0", " ")  # spaces are exported as &#160;
        column = round(float(element.get("x", "0")) / (float(length) / len(text)))
        lines.setdefault(int(found.group(1)), []).append((column, text))
    height = app.size.height
    return "\n".join(_line(sorted(lines.get(row, []))) for row in range(height))


def _line(runs: list[tuple[int, str]]) -> str:
    out, at = "", 0
    for column, text in runs:
        out += " " * max(0, column - at) + text
        at = max(at, column) + cell_len(text)
    return out


async def until(pilot: Pilot[Any], predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Let the app run until ``predicate()`` holds (the app redraws on its own timer)."""
    # Generous: a loaded CI machine (2 cores) can stall the redraw timer for seconds.
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.05)


def toasts(app: App[Any]) -> list[str]:
    """Title and message of every toast on the screen, one string each ("title: message")."""
    return [str(toast.render()).replace("\n", ": ", 1) for toast in app.screen.query("Toast")]
