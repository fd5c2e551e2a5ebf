"""``promptlab serve``: NATS (embedded unless ``nats.url`` names a server), the sidecar
and, when one is wired, the learner, in one command.

One sidecar process (default) on one event loop (uvloop when installed); the learner
runs in a child process of its own (:mod:`promptlab.commands.learner_process`, whose
:func:`~promptlab.commands.learner_process.resolve_learner` is the hook), so it never
takes the sidecar's event loop or GIL. ``--workers N``: the parent starts NATS and the
learner once, then N processes of this command on one port
(:mod:`promptlab.commands.serve_workers`).

Stopping (SIGINT or SIGTERM): stop accepting, let in-flight calls finish within
``server.drain_timeout_s``, flush the event publisher (what NATS does not take stays
in the outbox), stop the learner, then NATS if this process started it; exit 0.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from promptlab import startup
from promptlab.commands.learner_process import LearnerStarter, LearnerStop, resolve_learner
from promptlab.commands.running import close_bus, load_prompts, open_bus, run_loop, stop_event
from promptlab.commands.serve_workers import supervise
from promptlab.events.bus import BusError
from promptlab.events.credentials import redact_url
from promptlab.events.publisher import EventPublisher
from promptlab.logs import ACCESS_LOGGER
from promptlab.prompts import PromptFileError, PromptSpec
from promptlab.reads import StoreReads
from promptlab.settings import Settings
from promptlab.sidecar import keys
from promptlab.sidecar.access_log import AccessLogger
from promptlab.sidecar.app import create_app
from promptlab.sidecar.feedback import FeedbackPolicy
from promptlab.sidecar.guard import GuardedAppRunner


def _with_cli_overrides(args: argparse.Namespace, settings: Settings) -> Settings:
    update: dict[str, Any] = {}
    if args.host:
        update["host"] = args.host
    if args.port is not None:
        update["port"] = args.port
    if args.workers is not None:
        update["workers"] = max(1, args.workers)
    if not update:
        return settings
    return settings.model_copy(update={"server": settings.server.model_copy(update=update)})


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = _with_cli_overrides(args, settings)
    try:
        prompts = load_prompts(settings)
    except PromptFileError as exc:
        print(f"promptlab serve: {exc}", file=sys.stderr)
        return 2
    start_learner = None if args.no_learner else resolve_learner(settings)
    if not args.reuse_port:
        # Before starting NATS or the learner: a taken port is one line, at once.
        busy = startup.check_port_free(settings.server.host, settings.server.port)
        if busy:
            print(busy, file=sys.stderr)
            return 1
    try:
        if settings.server.workers > 1 and not args.reuse_port:
            return run_loop(supervise(args, settings, start_learner, prompts))
        return run_loop(
            serve(
                settings,
                prompts,
                reuse_port=args.reuse_port,
                start_learner=start_learner,
                access_log=getattr(args, "verbose", 0) >= 1,
                quiet=args.reuse_port,
            )
        )
    except BusError as exc:
        # The embedded server cannot start, or the bus settings cannot be used (an
        # unreadable TLS file or credentials): one line, not a traceback. An unreachable
        # NATS is not an error here: calls are served and events wait in the outbox.
        print(f"promptlab serve: {exc}", file=sys.stderr)
        return 2


async def serve(
    settings: Settings,
    prompts: Mapping[str, PromptSpec],
    *,
    reuse_port: bool = False,
    start_learner: LearnerStarter | None = None,
    announce: Callable[[str], None] = lambda line: print(line, flush=True),
    access_log: bool = False,
    quiet: bool = False,
) -> int:
    """Run one sidecar process until SIGINT/SIGTERM, then stop gracefully.

    Returns 0, or 1 with one line on stderr when the port is taken. ``access_log``
    logs one line per request on ``promptlab.access`` (``-v``); ``quiet`` prints only
    the ready line (workers: their parent prints the banner).
    """
    server = settings.server
    bus, url, embedded, connecting = await open_bus(settings)
    publisher = EventPublisher(
        bus,
        settings.nats.outbox_dir,
        settings.nats.publish_queue_size,
        linger_s=settings.nats.publish_linger_ms / 1000.0,
    )
    policy = FeedbackPolicy(
        repeat=settings.learner.feedback_repeat, wait_s=settings.learner.feedback_wait_s
    )
    app = create_app(
        settings, prompts=prompts, publisher=publisher, bus=bus, feedback_policy=policy
    )
    reads = StoreReads(settings)
    app.cleanup_ctx.append(reads.cleanup_ctx)
    app[keys.ANALYTICS] = reads.analytics
    app[keys.HISTORY] = reads.history
    runner = GuardedAppRunner(
        app,
        header_timeout=server.header_timeout_s,
        handler_cancellation=True,
        shutdown_timeout=server.drain_timeout_s,
        **(
            {"access_log": logging.getLogger(ACCESS_LOGGER), "access_log_class": AccessLogger}
            if access_log
            else {"access_log": None}
        ),
    )
    stop_learner: LearnerStop | None = None
    try:
        await runner.setup()
        site = web.TCPSite(
            runner, server.host, server.port, reuse_port=reuse_port or None, backlog=2048
        )
        try:
            await site.start()
        except OSError as exc:
            if not startup.is_addr_in_use(exc):
                raise
            print(startup.port_in_use(server.host, server.port), file=sys.stderr, flush=True)
            return 1
        port = runner.addresses[0][1] if runner.addresses else server.port
        if start_learner is not None:
            stop_learner = await start_learner(settings, bus)
        stop = stop_event()
        base_url = f"http://{server.host}:{port}"
        announce(f"promptlab serving on {base_url}/v1 (nats: {redact_url(url)})")
        if not quiet:
            for line in startup.banner(
                base_url=base_url,
                nats_url=url,
                prompts=prompts,
                providers=settings.providers,
                learner=startup.learner_role(enabled=start_learner is not None),
            ):
                announce(line)
        await stop.wait()
        app[keys.STATE]["draining"] = True
    finally:
        # Stops accepting, drains in-flight calls (drain_timeout_s), then the app's
        # cleanup flushes and closes the publisher.
        # Each step runs even when an earlier one failed: a failed drain must not leave
        # the learner running (the process would never exit).
        try:
            await runner.cleanup()
        finally:
            try:
                if stop_learner is not None:
                    await stop_learner()
            finally:
                await close_bus(bus, embedded, connecting)
    return 0
