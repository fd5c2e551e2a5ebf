"""promptlab's live TUI: watches the stats snapshots and events, sends operator commands.

Imports only :mod:`events` (and Textual). Build it with :func:`make_tui`.
"""

from promptlab.tui.app import PromptLabApp, make_tui

__all__ = ["PromptLabApp", "make_tui"]
