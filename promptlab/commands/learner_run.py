"""``promptlab learner``: run the learner alone (for fleets of ``serve --no-learner``).

It connects to NATS (``nats.url``; ``embedded`` starts or reuses the local server),
takes the store's lease or stands by until it is free (:mod:`learner.lease`), and runs
until SIGINT or SIGTERM, when it finishes its batch, writes its snapshots, gives the
lease up and exits 0. Several may run at once: exactly one is active, the others stand
by and one of them takes over within ``learner.lease_s`` of the active one's death.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from typing import TYPE_CHECKING, Any

from promptlab.commands.serve import (
    _close_bus,
    _open_bus,
    _run_learner,
    _run_loop,
    _stop_event,
)
from promptlab.events.bus import BusError
from promptlab.events.credentials import redact_url

if TYPE_CHECKING:
    from promptlab.settings import Settings

log = logging.getLogger(__name__)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The ``promptlab learner`` handler."""
    try:
        return _run_loop(run_learner(settings))
    except BusError as exc:  # the embedded server or the bus settings: one line
        print(f"promptlab learner: {exc}", file=sys.stderr)
        return 2


async def run_learner(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Run one learner until ``stop`` (default: SIGINT/SIGTERM) is set."""
    stop = stop or _stop_event()
    bus, url, embedded, connecting = await _open_bus(settings)
    holder: dict[str, Any] = {}
    stopping = asyncio.Event()
    task = asyncio.create_task(_run_learner(settings, bus, holder, stopping), name="learner")
    print(
        f"promptlab learner: NATS {redact_url(url)}, store {_redacted(settings.storage.url)}",
        flush=True,
    )
    try:
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        stopping.set()
        learner = holder.get("learner")
        if learner is not None:
            learner.request_stop()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), 10.0)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        learner = holder.get("learner")
        if learner is not None:
            await learner.close()
        await _close_bus(bus, embedded, connecting)
    return 0


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
