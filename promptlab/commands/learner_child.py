"""The entry of ``serve``'s learner child process (started by
:mod:`promptlab.commands.learner_process`, which says why it is a process).

It reads its settings, pickled, from stdin, then runs what ``promptlab learner`` runs
(:func:`learner_run.run_learner`) until SIGTERM or SIGINT, or until its stdin reaches end
of file: the parent is gone (even SIGKILLed), so it stops instead of running on as an
orphan holding the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import sys
from typing import TYPE_CHECKING

from promptlab.logs import configure_logging

if TYPE_CHECKING:
    from promptlab.settings import Settings

log = logging.getLogger(__name__)


async def _child(settings: Settings) -> int:
    from promptlab.commands.learner_run import run_learner

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The parent holds the other end of stdin: end of file means it is gone.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_parent() -> None:
        with contextlib.suppress(Exception):
            await reader.read()
        log.info("serve is gone; the learner stops")
        stop.set()

    watcher = asyncio.create_task(watch_parent())
    try:
        return await run_learner(settings, stop)
    finally:
        watcher.cancel()


def main() -> int:
    """Entry of the child: settings from stdin, then the learner until told to stop."""
    settings, verbosity, fmt = pickle.load(sys.stdin.buffer)
    configure_logging(verbosity, fmt)
    # serve reports a NATS outage, a disconnection and each recovery once; its learner
    # child, whose connection follows the same server, does not say them a second time.
    quiet = logging.DEBUG if verbosity >= 2 else logging.ERROR
    for name in (
        "promptlab.commands.running",
        "promptlab.commands.learner_run",
        "promptlab.events.jetstream",
    ):
        logging.getLogger(name).setLevel(quiet)
    try:
        # Calls first: on busy cores the scheduler runs the sidecar before the learner,
        # whose backlog waits in the stream.
        os.nice(settings.learner.serve_nice)
    except OSError as exc:
        log.warning("learner priority unchanged: %s", exc)
    from promptlab.commands.running import run_loop

    return run_loop(_child(settings))


if __name__ == "__main__":
    sys.exit(main())
