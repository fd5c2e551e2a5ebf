"""Helpers for the TUI tests: a frozen clock, the screen as plain text, waiting."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def screen_text(app: App[Any]) -> str:
    """What the terminal shows now, as plain text (toasts and modals included)."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system=None,
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    console.print(update)
    return console.export_text()


async def until(pilot: Pilot[Any], predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """Let the app run until ``predicate()`` holds (the app redraws on its own timer)."""
    # Generous: a loaded CI machine (2 cores) can stall the redraw timer for seconds.
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.05)


def toasts(app: App[Any]) -> list[str]:
    """Title and message of every notification still shown, one string each."""
    return [f"{n.title}: {n.message}" for n in app._notifications]
