"""`promptlab tui`: watch prompts live and steer them from a terminal.

Connects to the NATS the settings name (``--nats URL`` overrides). With the default
``nats.url = "embedded"`` it reuses the embedded server that ``promptlab serve`` or
``promptlab demo`` started, found through its state file; it never starts one itself,
because a server owned by the TUI would vanish when the TUI quits, under a running
sidecar. When nothing answers it says so and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from promptlab.events import BusError
from promptlab.events.config import NatsSettings
from promptlab.events.credentials import redact_url
from promptlab.events.embedded import EmbeddedNats, nats_answers
from promptlab.events.jetstream import JetStreamBus
from promptlab.settings import Settings


class CannotConnect(Exception):
    """No NATS to watch; the message says where it looked and what to do."""


safe_url = redact_url
"""The URL without credentials (``nats://user:pass@host`` -> ``nats://host``)."""


def embedded_url(nats: NatsSettings) -> str:
    """URL of the running embedded server for ``nats.data_dir``, or :class:`CannotConnect`."""
    server = EmbeddedNats(nats)
    hint = "start `promptlab serve` or `promptlab demo` first, or pass --nats URL"
    try:
        state = json.loads(server.state_file.read_text())
        port, url = int(state["port"]), str(state["url"])
    except FileNotFoundError:
        raise CannotConnect(
            f"no embedded NATS server is running for {server.data_dir}: {hint}"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CannotConnect(f"cannot read {server.state_file} ({exc}): {hint}") from None
    if not nats_answers(port):
        raise CannotConnect(
            f"the embedded NATS server recorded in {server.state_file} (port {port}) is not answering: {hint}"
        )
    return url


def resolve_url(nats_option: str | None, nats: NatsSettings) -> str:
    """``--nats`` if given, else the settings' URL, with "embedded" resolved to a running server."""
    url = nats_option or nats.url
    if url.strip().lower() == "embedded":
        return embedded_url(nats)
    return url


async def open_bus(nats_option: str | None, settings: Settings) -> JetStreamBus:
    """A started bus, or :class:`CannotConnect` with a message for the operator."""
    url = resolve_url(nats_option, settings.nats)
    bus = JetStreamBus(settings.nats, url=url, name="promptlab-tui")
    try:
        await bus.start()
    except BusError as exc:
        raise CannotConnect(f"cannot connect to NATS at {safe_url(url)}: {exc}") from None
    return bus


async def _main(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here so `promptlab --help` and the other commands never load Textual.
    from promptlab.tui import make_tui

    try:
        bus = await open_bus(args.nats, settings)
    except CannotConnect as exc:
        print(f"promptlab tui: {exc}", file=sys.stderr)
        return 1
    try:
        app = make_tui(
            bus, title=f"promptlab · {safe_url(bus.url)}", stale_after_s=args.stale_after
        )
        await app.run_async()
    finally:
        await bus.close()
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_main(args, settings))
