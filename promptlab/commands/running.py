"""What the long-running commands (``serve``, its workers, ``learner``) share.

The event loop (uvloop when installed), the stop signal (SIGINT/SIGTERM), the prompt
files, and the bus: opened at start and, when NATS does not answer, connected in the
background while the process works on (events wait in the outbox). The outage is
logged once, and its end once (:class:`events.outage.OutageLog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from promptlab.events.bus import BusUnavailable
from promptlab.events.credentials import redact_url
from promptlab.events.embedded import EmbeddedNats, resolve_nats_url
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.outage import OutageLog
from promptlab.prompts import PromptSpec, load_prompt_dir
from promptlab.providers.registry import Registry
from promptlab.settings import Settings

log = logging.getLogger(__name__)

BUS_RETRY_S = 2.0


def load_prompts(settings: Settings) -> dict[str, PromptSpec]:
    """The prompt files; a missing directory means no routed prompts (with a warning)."""
    directory = Path(settings.prompts.dir)
    if not directory.is_dir():
        log.warning("prompt directory %s does not exist: no routed prompts", directory)
        return {}
    return load_prompt_dir(
        directory,
        providers=settings.providers.keys(),
        model_rule=Registry(settings.providers).route_problem,
    )


def run_loop(main: Awaitable[int]) -> int:
    """Run ``main`` to its end on a fresh event loop (uvloop when installed)."""
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is optional
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)  # type: ignore[arg-type]


def stop_event() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _connect(bus: JetStreamBus, outage: OutageLog) -> None:
    """Connect the bus, retrying in the background: calls work meanwhile (outbox).

    Attempts start every ``outage.every_s`` (an attempt's own wait counts), and the
    outage was said once already: only the recovery is logged.
    """
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await bus.start()
        except BusUnavailable as exc:
            outage.failed(exc)
        else:
            outage.recovered("events flow again and the outbox drains")
            return
        await asyncio.sleep(max(0.0, started + outage.every_s - loop.time()))


async def open_bus(
    settings: Settings,
) -> tuple[JetStreamBus, str, EmbeddedNats | None, asyncio.Task[None] | None]:
    """The bus, its URL, the embedded server this process started (or None) and the
    task still connecting in the background (None when the bus is connected)."""
    url, embedded = await resolve_nats_url(settings.nats)
    bus = JetStreamBus(settings.nats, url=url)
    try:
        await bus.start()
        connecting = None
    except BusUnavailable as exc:
        # An attempt lasts up to connect_timeout_s: the true interval is the longer one.
        every = max(BUS_RETRY_S, settings.nats.connect_timeout_s)
        outage = OutageLog(log, f"NATS at {redact_url(url)}", every)
        outage.failed(exc, "serving anyway, events go to the outbox until it answers")
        connecting = asyncio.create_task(_connect(bus, outage))
    return bus, url, embedded, connecting


async def close_bus(
    bus: JetStreamBus, embedded: EmbeddedNats | None, connecting: asyncio.Task[None] | None
) -> None:
    """Stop connecting, close the bus, then stop the server when this process started it."""
    if connecting is not None:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
    await bus.close()
    if embedded is not None:
        await embedded.stop()
