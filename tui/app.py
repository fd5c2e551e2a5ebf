"""The Textual app and its factory, :func:`make_tui`.

The app owns a :class:`~tui.state.LabState` and a :class:`~tui.feed.Feed` that fills it
from the bus. A timer ticks ``refresh_hz`` times a second: it turns queued notices into
toasts, judges health, and lets the visible screen redraw if the state's revision moved.
That timer is the only path from data to widgets, so a burst of 500 events/s costs a
handful of redraws, not 500.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from promptlab.events import BaseEvent, EventBus
from promptlab.tui import format as fmt
from promptlab.tui.feed import Feed
from promptlab.tui.health import Health, assess
from promptlab.tui.messages import CommandRequested, OpenPrompt, RedrawRequested
from promptlab.tui.screens.base import LiveScreen
from promptlab.tui.screens.confirm import ConfirmScreen
from promptlab.tui.screens.detail import DetailScreen
from promptlab.tui.screens.experiments import ExperimentReportScreen, ExperimentsScreen
from promptlab.tui.screens.overview import OverviewScreen
from promptlab.tui.state import LabState

Clock = Callable[[], float]


class PromptLabApp(App[None]):
    """Watch prompts, variants and decisions live; promote, roll back, pause."""

    CSS_PATH = "app.tcss"
    TITLE = "promptlab"
    BINDINGS = [
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        # Not in the footer: the screenshots and snapshot tests of the live screens stay as they are.
        Binding("e", "experiments", "Experiments", show=False),
        Binding("a", "toggle_archived", "Archived", show=False),
    ]

    def __init__(
        self,
        bus: EventBus,
        *,
        title: str = "promptlab",
        stale_after_s: float = 10.0,
        refresh_hz: float = 4.0,
        history_events: int = 2000,
        actor: str = "tui",
        clock: Clock = time.monotonic,
        feed: bool = True,
        experiments_dir: Path | str = ".promptlab/experiments",
    ) -> None:
        super().__init__()
        self.experiments_dir = Path(experiments_dir)
        """Where saved experiment reports are listed from (``e``)."""
        self.bus = bus
        self.title = title
        self.stale_after_s = stale_after_s
        self.refresh_hz = refresh_hz
        self.actor = actor
        self.clock = clock
        self.state = LabState()
        self.feed = Feed(bus, self.state, clock=clock, history_events=history_events)
        self._run_feed = feed
        self._started_at = clock()
        self._health: Health | None = None

    # ------------------------------------------------------------------ lifecycle

    async def on_mount(self) -> None:
        self._started_at = self.clock()
        await self.push_screen(OverviewScreen(self.state, actor=self.actor))
        if self._run_feed:
            await self.feed.start()
        self.set_interval(1 / self.refresh_hz, self.redraw)
        self.redraw()

    async def on_unmount(self) -> None:
        await self.feed.stop()

    # ------------------------------------------------------------------ drawing

    def health(self) -> Health:
        return assess(
            self.state,
            now=self.clock(),
            started_at=self._started_at,
            connected=self.feed.connected,
            ever_connected=self.feed.ever_connected,
            connect_error=self.feed.connect_error,
            stale_after_s=self.stale_after_s,
        )

    def redraw(self) -> None:
        """The tick: toasts, status line, and a redraw of the visible screen if data moved."""
        while self.state.notices:
            notice = self.state.notices.popleft()
            self.notify(notice.text, title=notice.title, severity=notice.severity, timeout=8)
        screen = self.screen
        if isinstance(screen, LiveScreen):
            screen.tick(self.state, self.health(), self._detail())

    def _detail(self) -> str:
        count = len(self.state.prompts)
        return f"{count} prompt{'s' if count != 1 else ''} · {fmt.count(self.state.events_seen)} events seen"

    # ------------------------------------------------------------------ navigation

    def open_prompt(self, prompt_id: str) -> None:
        self.push_screen(DetailScreen(prompt_id, self.state, actor=self.actor))

    # Messages the screens post up (tui.messages).

    def on_open_prompt(self, message: OpenPrompt) -> None:
        self.open_prompt(message.prompt_id)

    def on_command_requested(self, message: CommandRequested) -> None:
        self.confirm_and_send(
            message.command, question=message.question, description=message.description
        )

    def on_redraw_requested(self, message: RedrawRequested) -> None:
        self.redraw()

    def action_toggle_archived(self) -> None:
        """Show archived variants in the prompt and variant lists, or hide them again."""
        shown = self.state.toggle_archived()
        self.notify("Archived variants shown." if shown else "Archived variants hidden.", timeout=3)
        self.redraw()

    def action_experiments(self) -> None:
        if not isinstance(self.screen, ExperimentsScreen | ExperimentReportScreen):
            self.push_screen(ExperimentsScreen(self.experiments_dir))

    # ------------------------------------------------------------------ commands

    def confirm_and_send(self, command: BaseEvent, *, question: str, description: str) -> None:
        """Ask first; on yes, publish ``command`` in the background and report the outcome."""

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self.send(command, description), group="commands")

        self.push_screen(ConfirmScreen(question), answered)

    async def send(self, command: BaseEvent, description: str) -> bool:
        """Publish one command; a failure is a toast, never a crash. Returns True when sent."""
        self.state.command_sent(command.event_id, description)
        try:
            await self.bus.publish(command, timeout=5.0)
        except Exception as exc:  # BusUnavailable, timeouts, anything: the operator must know
            self.state.pending.pop(command.event_id, None)
            self.notify(
                f"Could not send {description}: {exc}. Nothing was changed.",
                title="Command not sent",
                severity="error",
                timeout=10,
            )
            return False
        self.notify(
            f"Sent {description}. The learner carries it out or refuses it.",
            title="Command sent",
            timeout=5,
        )
        return True


def make_tui(
    bus: EventBus,
    *,
    title: str = "promptlab",
    stale_after_s: float = 10.0,
    refresh_hz: float = 4.0,
    history_events: int = 2000,
    actor: str = "tui",
    clock: Clock = time.monotonic,
    experiments_dir: Path | str = ".promptlab/experiments",
) -> PromptLabApp:
    """Build the TUI on ``bus`` (started or not: the app connects and retries itself).

    * ``stale_after_s``: "learner offline" after this long without a stats snapshot while
      traffic flows (or without any snapshot since start);
    * ``refresh_hz``: redraws per second at most, however fast events arrive;
    * ``history_events``: how much of the stream's tail to read at start for the live
      feed, the decision log and the templates;
    * ``actor``: who commands are sent as;
    * ``clock``: monotonic seconds (tests and screenshots freeze it).
    """
    return PromptLabApp(
        bus,
        title=title,
        stale_after_s=stale_after_s,
        refresh_hz=refresh_hz,
        history_events=history_events,
        actor=actor,
        clock=clock,
        experiments_dir=experiments_dir,
    )
