"""What the overview and the detail screen share: redraw on change, status line, commands."""

from __future__ import annotations

from rich.markup import escape
from textual.binding import Binding
from textual.screen import Screen

from promptlab.events import BaseEvent, PauseCommand, RollbackCommand
from promptlab.tui.health import Health
from promptlab.tui.messages import CommandRequested, RedrawRequested
from promptlab.tui.state import LabState
from promptlab.tui.widgets import StatusLine


class LiveScreen(Screen[None]):
    """A screen the app redraws from :class:`LabState` when its revision moves.

    It gets the state it shows and the ``actor`` its commands are sent as; it asks the
    app for anything else by posting a message (:mod:`tui.messages`).
    """

    BINDINGS = [
        Binding("r", "rollback", "Roll back"),
        Binding("s", "pause", "Pause/resume"),
    ]

    drawn_revision = -1

    def __init__(self, state: LabState, *, actor: str) -> None:
        super().__init__()
        self.state = state
        self.actor = actor

    def show(self, state: LabState) -> None:
        """Draw ``state`` on this screen's widgets."""
        raise NotImplementedError

    def current_prompt(self) -> str | None:
        """The prompt the prompt-level actions apply to."""
        raise NotImplementedError

    def tick(self, state: LabState, health: Health, detail: str, *, force: bool = False) -> None:
        """Called by the app a few times a second; redraws only when something changed."""
        # A screen can be mounted before its widgets are composed (and keep running a
        # moment while it closes): draw only once they are there.
        lines = self.query(StatusLine) if self.is_mounted else None
        if not lines:
            return
        lines.first().show(health, detail)
        if force or state.revision != self.drawn_revision:
            self.drawn_revision = state.revision
            self.show(state)

    def on_screen_resume(self) -> None:
        self.drawn_revision = -1  # data moved while it was hidden
        self.post_message(RedrawRequested())

    def on_resize(self) -> None:
        self.drawn_revision = -1  # plots are drawn to the width

    # ------------------------------------------------------------------ actions

    def request(self, command: BaseEvent, *, question: str, description: str) -> None:
        """Ask the app to confirm ``command`` with the operator and send it."""
        self.post_message(CommandRequested(command, question=question, description=description))

    def action_rollback(self) -> None:
        prompt_id = self.current_prompt()
        if prompt_id is None:
            self.notify("No prompt selected.", severity="warning")
            return
        champion = self.state.prompt(prompt_id).champion or "the champion"
        self.request(
            RollbackCommand(
                prompt_id=prompt_id, actor=self.actor, reason="operator rollback from the TUI"
            ),
            question=f"Roll back [b]{escape(prompt_id)}[/b]?\n\nDemotes {escape(champion)} and restores the "
            "previous champion. The learner may refuse (nothing to roll back).",
            description=f"roll back of {prompt_id}",
        )

    def action_pause(self) -> None:
        prompt_id = self.current_prompt()
        if prompt_id is None:
            self.notify("No prompt selected.", severity="warning")
            return
        paused = self.state.prompt(prompt_id).paused
        verb = "Resume" if paused else "Pause"
        effect = (
            "Challengers get exploration traffic again."
            if paused
            else "Only the champion is served until exploration is resumed."
        )
        self.request(
            PauseCommand(
                prompt_id=prompt_id,
                paused=not paused,
                actor=self.actor,
                reason=f"{verb.lower()}d from the TUI",
            ),
            question=f"{verb} exploration of [b]{escape(prompt_id)}[/b]?\n\n{effect}",
            description=f"{verb.lower()} exploration of {prompt_id}",
        )
