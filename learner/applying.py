"""Applying a batch so that nothing blocks the learner: a database outage is waited
out, and an event the projection cannot take is set aside as a dead letter.

:func:`apply_retrying` applies the whole batch again with backoff while the database is
unavailable (nothing is acked meanwhile). :func:`apply_isolating` is for failures that
may be one event's fault (the database rejected a write, or a bug in the projection):
it applies the events one by one and turns the one that fails alone into a dead letter
with the reason, so the position advances past it. An unavailable database is never
blamed on an event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from promptlab.events.bus import Delivery
from promptlab.learner.backoff import learner_backoff
from promptlab.learner.errors import StoreRejected, StoreUnavailable, map_store_errors
from promptlab.learner.projection.batch import BatchResult
from promptlab.learner.projection.transaction import Projection

log = logging.getLogger(__name__)


async def apply_retrying(
    projection: Projection,
    deliveries: Sequence[Delivery],
    *,
    stopping: asyncio.Event,
    on_retry: Callable[[], None],
) -> BatchResult:
    """Apply a batch; while the database is unavailable apply it again with backoff
    (until it works, or ``stopping`` is set: then StoreUnavailable)."""
    backoff = learner_backoff()
    while True:
        try:
            with map_store_errors():
                return await projection.apply(deliveries)
        except StoreUnavailable as exc:
            if stopping.is_set():
                raise
            on_retry()
            log.warning(
                "database unavailable (%s); applying the batch of %d again in %.2fs",
                exc,
                len(deliveries),
                delay := backoff.next(),
            )
            await asyncio.sleep(delay)


async def apply_isolating(
    projection: Projection,
    deliveries: Sequence[Delivery],
    *,
    stopping: asyncio.Event,
    on_retry: Callable[[], None],
) -> BatchResult:
    """Apply events one by one; one that fails alone becomes a dead letter."""
    merged = BatchResult(position=projection.position)
    for d in sorted(deliveries, key=lambda d: d.sequence):
        try:
            part = await apply_retrying(projection, [d], stopping=stopping, on_retry=on_retry)
        except StoreUnavailable:
            raise
        except Exception as exc:
            kind = (
                "rejected by the database"
                if isinstance(exc, StoreRejected)
                else "cannot be projected"
            )
            reason = f"{kind}: {type(exc).__name__}: {exc}"[:500]
            log.error("sequence %d %s", d.sequence, reason)
            poison = Delivery(d.sequence, None, d.data, d.num_delivered, reason)
            part = await apply_retrying(projection, [poison], stopping=stopping, on_retry=on_retry)
        merged.absorb(part)
    return merged
