"""Follow a KV bucket for as long as the process runs: the one watch loop.

Every replica follows buckets (routing snapshots, prompts and variants defined at run
time, sticky assignments, the learner's status, the TUI's stats): each yields every
stored entry first, then every change. A watch breaks when NATS goes away or the bucket
is recreated; :func:`follow` watches again after ``retry_s``, reporting failures through
:class:`events.outage.RetryLog` (quiet while the bus is down, once per streak otherwise).
``apply`` decides what an entry means; an entry it cannot use is its to log and skip,
so one bad entry never stops the watch.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from promptlab.events.bus import EventBus, KVEntry
from promptlab.events.outage import RetryLog

Apply = Callable[[KVEntry], None] | Callable[[KVEntry], Awaitable[None]]

WATCH_RETRY_S = 1.0
"""Seconds between a broken watch and the next one."""


async def follow(
    bus: EventBus,
    bucket: str,
    apply: Apply,
    *,
    what: str,
    logger: logging.Logger,
    retry_s: float = WATCH_RETRY_S,
    deletions: bool = False,
) -> None:
    """Call ``apply`` on every entry of ``bucket``, past and future, until cancelled.
    Deleted entries (no value) are skipped unless ``deletions``."""
    retry = RetryLog(logger, what, retry_s)
    while True:
        try:
            async for entry in bus.kv_watch(bucket):
                retry.working()
                if entry.value is None and not deletions:
                    continue
                result = apply(entry)
                if inspect.isawaitable(result):
                    await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            retry.failed(bus, exc)
        await asyncio.sleep(retry_s)
