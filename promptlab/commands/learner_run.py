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
import importlib
import logging
import sys
from typing import TYPE_CHECKING, Any

from promptlab.commands.running import close_bus, load_prompts, open_bus, run_loop, stop_event
from promptlab.events.bus import BusError, BusUnavailable, EventBus
from promptlab.events.credentials import redact_url
from promptlab.online import online_evaluation
from promptlab.providers.backoff import Backoff

if TYPE_CHECKING:
    from promptlab.settings import Settings

log = logging.getLogger(__name__)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The ``promptlab learner`` handler."""
    try:
        return run_loop(run_learner(settings))
    except BusError as exc:  # the embedded server or the bus settings: one line
        print(f"promptlab learner: {exc}", file=sys.stderr)
        return 2


async def run_learner(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Run one learner until ``stop`` (default: SIGINT/SIGTERM) is set."""
    stop = stop or stop_event()
    bus, url, embedded, connecting = await open_bus(settings)
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
        await close_bus(bus, embedded, connecting)
    return 0


async def _run_learner(
    settings: Settings, bus: EventBus, holder: dict[str, Any], stopping: asyncio.Event
) -> None:
    """Import, start and run the learner, retrying while the bus or database is not there.

    The import (SciPy, SQLAlchemy: about a second) runs in a thread, so the sidecar is
    ready and answering meanwhile. ``stopping`` set at any point makes it return.
    """
    module = await asyncio.to_thread(importlib.import_module, "promptlab.learner.service")
    if stopping.is_set():
        return
    learner = holder["learner"] = module.Learner(
        settings.learner, settings.storage, bus, load_prompts(settings)
    )
    backoff = Backoff(first=0.5, cap=10.0)
    said: str | None = None
    while not stopping.is_set():
        try:
            await learner.start()
            break
        except Exception as exc:  # the sidecar must keep serving whatever happens here
            cause = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, BusUnavailable) and not bus.connected:
                log.debug("learner waits for the bus: %s", exc)  # the bus's owner says so
            elif cause != said:  # once per cause, not once per attempt
                log.warning("learner not started (%s); retrying with backoff up to 10s", cause)
                said = cause
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), backoff.next())
    if stopping.is_set():
        return
    from promptlab.models import make_providers

    # Breeding's calls ([learner.evolution]) and the demonstration pools' embeddings.
    client = make_providers(settings)
    await client.start()
    learner.attach_embedder(client)
    if settings.learner.evolution.enabled:
        learner.attach_breeder(client)
    try:
        async with online_evaluation(settings, bus, learner.prompts):
            await learner.run()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("learner crashed; the sidecar keeps serving on its last routing snapshot")
    finally:
        await client.close()


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
