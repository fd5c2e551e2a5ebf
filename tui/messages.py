"""Messages the screens post up to the app: Textual's "attributes down, messages up".

A screen receives what it shows (the :class:`~tui.state.LabState`, the actor its
commands are sent as) through its constructor and never reaches into the app; what it
wants done travels up as one of these messages, handled by
:class:`~tui.app.PromptLabApp`.
"""

from __future__ import annotations

from textual.message import Message

from promptlab.events import BaseEvent


class CommandRequested(Message):
    """Ask the operator ``question``; on yes, publish ``command`` (described as
    ``description`` in toasts)."""

    def __init__(self, command: BaseEvent, *, question: str, description: str) -> None:
        super().__init__()
        self.command = command
        self.question = question
        self.description = description


class OpenPrompt(Message):
    """Show the detail screen of ``prompt_id``."""

    def __init__(self, prompt_id: str) -> None:
        super().__init__()
        self.prompt_id = prompt_id


class RedrawRequested(Message):
    """Redraw the visible screen now rather than at the next tick (it came back into view)."""
