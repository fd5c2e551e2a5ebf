"""The loop of the learner's periodic writers (analytics snapshots, demonstration pools).

A round runs while this learner is active (only the learner holding the lease writes)
and the writer has something due, at most once every ``interval_s``; a failed round is
logged and the next one tries again; the loop ends when ``stopping`` is set. It looks
at least every :data:`POLL_S`, so a first round soon follows activation or the first
traffic. The clock decides when, never what.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

POLL_S = 0.5
"""The longest a due round waits for the loop to look."""


async def every(
    interval_s: float,
    stopping: asyncio.Event,
    work: Callable[[], Awaitable[object]],
    *,
    active: Callable[[], bool],
    due: Callable[[], bool] = lambda: True,
    what: str,
    logger: logging.Logger,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``work()`` every ``interval_s`` while ``active()`` and ``due()``, until
    ``stopping``; ``what`` names it in the warning of a failed round."""
    if interval_s <= 0:
        return
    last = -float("inf")
    while not stopping.is_set():
        now = clock()
        if active() and due() and now - last >= interval_s:
            last = now
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database hiccup: the next round tries again
                logger.warning("%s not written: %s: %s", what, type(exc).__name__, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), min(interval_s, POLL_S))
