"""Write SVG screenshots of both screens with the sample data, for the docs.

    python -m tui.screenshots [OUT_DIR]      # default: docs/screenshots

Runs the real app headless on an in-memory bus loaded with :mod:`tui.sample`, so the
pictures are deterministic and re-running it after a UI change refreshes them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from textual.widgets import DataTable

from promptlab.events.memory import MemoryBus
from promptlab.tui import sample
from promptlab.tui.app import PromptLabApp, make_tui
from promptlab.tui.screens.detail import DetailScreen

SIZE = (120, 36)


async def _settle(app: PromptLabApp, predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not show the sample data in time")
        await asyncio.sleep(0.05)


async def capture(out_dir: Path, size: tuple[int, int] = SIZE) -> list[Path]:
    """Save ``overview.svg``, ``detail.svg``, ``detail-posteriors.svg`` and
    ``detail-analytics.svg`` into ``out_dir`` (which must exist)."""
    bus = MemoryBus()
    await sample.load(bus)
    frozen = 1000.0
    app = make_tui(bus, title="promptlab · simulated demo data", clock=lambda: frozen)
    written = []
    async with app.run_test(size=size) as pilot:
        await _settle(app, lambda: app.screen.query_one("#prompts", DataTable).row_count == 3)
        await _settle(app, lambda: len(app.state.prompts["support-reply"].executions) == 24)
        await pilot.press("down")
        await pilot.pause(0.4)
        written.append(Path(app.save_screenshot("overview.svg", str(out_dir))))
        await pilot.press("enter")
        await _settle(app, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("down")  # concise-v3: the challenger worth a look
        await pilot.pause(0.4)
        written.append(Path(app.save_screenshot("detail.svg", str(out_dir))))
        await pilot.press("2")
        await pilot.pause(0.4)
        written.append(Path(app.save_screenshot("detail-posteriors.svg", str(out_dir))))
        await pilot.press("7")
        await pilot.pause(0.4)
        written.append(Path(app.save_screenshot("detail-analytics.svg", str(out_dir))))
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else Path("docs/screenshots")
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(capture(out_dir)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
