"""The learner of ``promptlab serve`` in a child process of its own: the parent side
(the child's entry is :mod:`promptlab.commands.learner_child`).

Why a process and not a task or a thread: the learner decodes every event, applies it
to the database (aiosqlite runs SQLite on a thread) and runs its statistics. On the
sidecar's event loop that work delays the calls being served; on a thread it still
holds the GIL for its Python parts. Measured on the bench box at 8 connections, the
learner in the sidecar's process cost 30% more CPU per routed call (GIL waits included)
than ``serve --no-learner``; in its own process the sidecar's loop pays nothing for it.

The parent sends the child its :class:`~promptlab.settings.Settings` (pickled, secrets
included: the pipe is private to the two processes) on the child's stdin, unchanged:
with ``nats.url = "embedded"`` the child finds the running server and its credentials
in the data dir, as ``serve``'s workers and every promptlab process do (and leaves it
running when it stops: only the process that started a server stops it).
The child runs what ``promptlab learner`` runs (:func:`learner_run.run_learner`: the
lease, the loop, online evaluation, breeding when configured) until

* SIGTERM or SIGINT (the parent's :func:`stop`, or Ctrl-C reaching the process group):
  it finishes its batch, writes its snapshots, gives the lease up and exits 0;
* its stdin reaches end of file: the parent is gone (even SIGKILLed), so it stops the
  same way instead of running on as an orphan.

A learner that fails to start or crashes is logged by the child and leaves the sidecar
serving on its last routing snapshot, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from promptlab.logs import JsonFormatter

if TYPE_CHECKING:
    from promptlab.events.bus import EventBus
    from promptlab.settings import Settings

log = logging.getLogger(__name__)

CHILD_MODULE = "promptlab.commands.learner_child"
STOP_TIMEOUT_S = 20.0
"""How long the parent waits for the child's graceful stop before it kills it."""

LearnerStop = Callable[[], Awaitable[None]]
LearnerStarter = Callable[["Settings", "EventBus"], Awaitable[LearnerStop]]
"""Starts the learner inside ``serve`` and returns the coroutine function that stops it."""


def resolve_learner(settings: Settings) -> LearnerStarter | None:
    """The learner ``serve`` runs next to the sidecar, or None when ``learner.enabled`` is off.

    It runs once per ``serve`` (in the parent with ``--workers``), in a child process
    (:func:`start_child`): its projection, statistics and database work never compete
    with the calls for the sidecar's event loop or the GIL. A learner that fails to
    start, or crashes later, is logged and leaves the sidecar serving: routing keeps its
    last snapshot and events keep flowing to the stream for when it is back.
    """
    return start_child if settings.learner.enabled else None


def _log_options() -> tuple[int, str]:
    """This process's verbosity and log format, for the child to log the same way."""
    level = logging.getLogger("promptlab").getEffectiveLevel()
    verbosity = 0 if level >= logging.WARNING else 1 if level >= logging.INFO else 2
    json_lines = any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)
    return verbosity, "json" if json_lines else "text"


async def start_child(settings: Settings, bus: EventBus) -> LearnerStop:
    """Start the learner in a child process; return the coroutine function that stops it.

    ``bus`` (the parent's) is not shared: the child opens its own connection to the
    server ``settings.nats`` names.
    """
    verbosity, fmt = _log_options()
    # -P: the working directory stays off sys.path (a local `events/` cannot shadow ours).
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-P", "-m", CHILD_MODULE,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(pickle.dumps((settings, verbosity, fmt)))
    await proc.stdin.drain()
    # stdin stays open: its end of file is how the child learns that the parent is gone.

    async def stop() -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("the learner did not stop within %.0fs; killing it", STOP_TIMEOUT_S)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
            log.warning("the learner exited with status %s", proc.returncode)

    return stop
