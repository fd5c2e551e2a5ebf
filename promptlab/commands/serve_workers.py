"""``promptlab serve --workers N``: the parent of N sidecar processes on one port.

The parent starts NATS and the learner once, then N worker processes (``serve`` itself,
one worker each: :func:`promptlab.commands.serve.serve`) that listen on one port with
SO_REUSEPORT. It prints the ready line when every worker is ready, forwards SIGINT and
SIGTERM, and restarts nothing: a worker that dies ends the service (supervisors restart
services). Each worker has its own outbox directory; their metrics are merged through a
shared multiprocess directory, so ``/metrics`` on any of them reports them all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from promptlab import startup
from promptlab.commands.learner_process import LearnerStarter, LearnerStop
from promptlab.commands.running import close_bus, open_bus, stop_event
from promptlab.events.credentials import redact_url
from promptlab.events.embedded import free_port
from promptlab.prompts import PromptSpec
from promptlab.settings import Settings
from promptlab.sidecar.metrics import WORKER_ENV, multiprocess_env, remove_multiprocess_dir

log = logging.getLogger(__name__)

WORKER_READY_TIMEOUT_S = 30.0


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
    bus, url, embedded, connecting = await open_bus(settings)
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
        stop = stop_event()
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
        await close_bus(bus, embedded, connecting)
        remove_multiprocess_dir(metrics_dir)
    return code
