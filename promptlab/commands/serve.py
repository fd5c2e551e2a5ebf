"""``promptlab serve``: NATS (embedded unless ``nats.url`` names a server), the sidecar
and, when one is wired, the learner, in one command.

One sidecar process (default) on one event loop (uvloop when installed); the learner
runs in a child process of its own (:mod:`promptlab.commands.learner_process`), so it
never takes the sidecar's event loop or GIL.
``--workers N``: the parent starts NATS and the learner once, then N worker processes
(this same command, one worker each) that listen on one port with SO_REUSEPORT; the
parent prints the ready line when every worker is ready, forwards SIGINT/SIGTERM, and
restarts nothing (a worker that dies ends the service: supervisors restart services).

Stopping (SIGINT or SIGTERM): stop accepting, let in-flight calls finish within
``server.drain_timeout_s``, flush the event publisher (what NATS does not take stays
in the outbox), stop the learner, then NATS if this process started it; exit 0.

The learner hook: :func:`resolve_learner` returns a :data:`LearnerStarter` (or None).
It is called with the settings and the started bus once the sidecar listens, and
returns an async function that stops the learner.

Why one module of this size: it is the process wiring of ``serve`` (bus, publisher,
app, learner, workers, graceful stop), one sequence with one shutdown order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from promptlab import startup
from promptlab.events.bus import BusError, BusUnavailable, EventBus
from promptlab.events.credentials import redact_url
from promptlab.events.embedded import EmbeddedNats, free_port, resolve_nats_url
from promptlab.events.jetstream import JetStreamBus
from promptlab.events.outage import OutageLog
from promptlab.events.publisher import EventPublisher
from promptlab.logs import ACCESS_LOGGER
from promptlab.online import online_evaluation
from promptlab.prompts import PromptFileError, PromptSpec, load_prompt_dir
from promptlab.providers.registry import Registry
from promptlab.reads import StoreReads
from promptlab.settings import Settings
from promptlab.sidecar import keys
from promptlab.sidecar.access_log import AccessLogger
from promptlab.sidecar.app import create_app
from promptlab.sidecar.feedback import FeedbackPolicy
from promptlab.sidecar.guard import GuardedAppRunner
from promptlab.sidecar.metrics import WORKER_ENV, multiprocess_env, remove_multiprocess_dir

log = logging.getLogger(__name__)

LearnerStop = Callable[[], Awaitable[None]]
LearnerStarter = Callable[[Settings, EventBus], Awaitable[LearnerStop]]
"""Starts the learner inside ``serve`` and returns the coroutine function that stops it."""

BUS_RETRY_S = 2.0
WORKER_READY_TIMEOUT_S = 30.0


def resolve_learner(settings: Settings) -> LearnerStarter | None:
    """The learner ``serve`` runs next to the sidecar, or None when ``learner.enabled`` is off.

    It runs once per ``serve`` (in the parent with ``--workers``), in a child process
    (:mod:`promptlab.commands.learner_process`). A learner that fails to start, or crashes
    later, is logged and leaves the sidecar serving: routing keeps its last snapshot and
    events keep flowing to the stream for when it is back.
    """
    if not settings.learner.enabled:
        return None
    # The learner's own process: its projection, statistics and database work never
    # compete with the calls for this event loop or the GIL (see learner_process).
    from promptlab.commands.learner_process import start_child

    return start_child


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
    delay = 0.5
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
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(delay * 2, 10.0)
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
            return _run_loop(supervise(args, settings, start_learner, prompts))
        return _run_loop(
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


def _run_loop(main: Awaitable[int]) -> int:
    try:
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is optional
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)  # type: ignore[arg-type]


def _stop_event() -> asyncio.Event:
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


async def _open_bus(
    settings: Settings,
) -> tuple[JetStreamBus, str, EmbeddedNats | None, asyncio.Task[None] | None]:
    url, embedded = await resolve_nats_url(settings.nats)
    bus = JetStreamBus(settings.nats, url=url)
    try:
        await bus.start()
        connecting = None
    except BusUnavailable as exc:
        # An attempt lasts up to connect_timeout_s: the true interval is the longer one.
        every = max(BUS_RETRY_S, settings.nats.connect_timeout_s)
        outage = OutageLog(log, f"NATS at {safe_nats_url(url)}", every)
        outage.failed(exc, "serving anyway, events go to the outbox until it answers")
        connecting = asyncio.create_task(_connect(bus, outage))
    return bus, url, embedded, connecting


def safe_nats_url(url: str) -> str:
    """``url`` without credentials (``nats://user:pass@host`` -> ``nats://host``)."""
    return ",".join(u.rsplit("@", 1)[-1] for u in url.split(","))


async def _close_bus(
    bus: JetStreamBus, embedded: EmbeddedNats | None, connecting: asyncio.Task[None] | None
) -> None:
    if connecting is not None:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
    await bus.close()
    if embedded is not None:
        await embedded.stop()


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
    bus, url, embedded, connecting = await _open_bus(settings)
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
        stop = _stop_event()
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
                await _close_bus(bus, embedded, connecting)
    return 0


def worker_command(args: argparse.Namespace) -> list[str]:
    """``python -P -m promptlab [-v...] [--log-format F]``: ``-P`` keeps the working
    directory off ``sys.path``, so a ``prompts/``, ``events/`` or ``sidecar/`` folder
    there cannot shadow our packages."""
    command = [sys.executable, "-P", "-m", "promptlab"]
    verbosity = getattr(args, "verbose", 0)
    if verbosity:
        command.append("-" + "v" * verbosity)
    if getattr(args, "log_format", "text") != "text":
        command += ["--log-format", args.log_format]
    return command


async def supervise(
    args: argparse.Namespace,
    settings: Settings,
    start_learner: LearnerStarter | None,
    prompts: Mapping[str, PromptSpec] | None = None,
) -> int:
    """Start NATS and the learner here, and ``server.workers`` processes on one port."""
    server = settings.server
    bus, url, embedded, connecting = await _open_bus(settings)
    port = server.port or free_port()
    # Workers write their metrics here; /metrics on any of them reads them all.
    metrics_env, metrics_dir = multiprocess_env()
    procs: list[asyncio.subprocess.Process] = []
    stop_learner: LearnerStop | None = None
    code = 0
    try:
        for index in range(server.workers):
            env = {
                **os.environ,
                # An embedded server's workers find it (and its credentials) in the data
                # dir as any promptlab process does; only an external URL is handed down.
                **({} if embedded is not None else {"PROMPTLAB_NATS__URL": url}),
                "PROMPTLAB_NATS__OUTBOX_DIR": str(
                    Path(settings.nats.outbox_dir) / f"worker-{index}"
                ),
                **metrics_env,
                WORKER_ENV: str(index),
            }
            command = worker_command(args)
            if getattr(args, "config", None):
                command += ["--config", str(args.config)]
            command += [
                "serve",
                "--workers",
                "1",
                "--no-learner",
                "--reuse-port",
                "--host",
                server.host,
                "--port",
                str(port),
            ]
            procs.append(
                await asyncio.create_subprocess_exec(
                    *command, env=env, stdout=asyncio.subprocess.PIPE
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), WORKER_READY_TIMEOUT_S)
            if not line:
                raise RuntimeError("a worker exited before it was ready (see its log above)")
        if start_learner is not None:
            stop_learner = await start_learner(settings, bus)
        stop = _stop_event()
        base_url = f"http://{server.host}:{port}"
        print(
            f"promptlab serving on {base_url}/v1 "
            f"(nats: {redact_url(url)}, {server.workers} workers)",
            flush=True,
        )
        for text in startup.banner(
            base_url=base_url,
            nats_url=url,
            prompts=prompts or {},
            providers=settings.providers,
            learner=startup.learner_role(enabled=start_learner is not None),
            workers=server.workers,
        ):
            print(text, flush=True)
        exited = [asyncio.create_task(p.wait()) for p in procs]
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([stopping, *exited], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not stop.is_set():
            log.error("a worker exited; stopping the others")
            code = 1
    except (RuntimeError, TimeoutError) as exc:
        print(f"promptlab serve: {exc}", file=sys.stderr)
        code = 1
    finally:
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), server.drain_timeout_s + 10.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            if proc.returncode not in (0, -signal.SIGTERM):
                code = code or 1
        if stop_learner is not None:
            await stop_learner()
        await _close_bus(bus, embedded, connecting)
        remove_multiprocess_dir(metrics_dir)
    return code
