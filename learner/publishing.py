"""What the learner publishes besides snapshots: its decisions and command answers
through the outbox, dead letters, and its status.

A decision is written to the ``outbox`` table in its own transaction before it is
published, with a deterministic id (JetStream drops a copy), and counts as in flight
until it comes back through the stream and the projection applies it: the stream is
the single source of truth. :class:`Outbox` keeps what is not published yet and
publishes it when NATS takes it; after a restart the learner reloads the table.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence

from promptlab.events.bus import BusError, EventBus
from promptlab.events.models import BaseEvent, decode, encode
from promptlab.events.snapshots import LearnerStatus
from promptlab.events.subjects import Bucket, Header, Subject
from promptlab.learner.lease import Lease
from promptlab.learner.projection.batch import DeadLetter
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.store import Store

log = logging.getLogger(__name__)


class Outbox:
    """Decisions and command answers on their way to the stream."""

    def __init__(self, store: Store, bus: EventBus, projection: Projection) -> None:
        self.store = store
        self.bus = bus
        self.projection = projection
        """Its ``in_flight`` (event id -> prompt id) holds each event until it is projected."""
        self.unpublished: dict[str, BaseEvent] = {}

    async def reload(self) -> None:
        """Take up the outbox table's events (a learner that just became active)."""
        for event_id, _prompt, data in await self.store.outbox_rows():
            self.unpublished[event_id] = decode(data)

    def add(self, event: BaseEvent) -> None:
        """An event the projection already wrote to the outbox (a command's answer)."""
        self.unpublished[event.event_id] = event

    async def record(self, decided: Sequence[tuple[str, BaseEvent]]) -> None:
        """Write decisions (``(prompt id, event)``) to the outbox table, then queue them."""
        if not decided:
            return
        rows = [{"event_id": e.event_id, "prompt_id": p, "data": encode(e)} for p, e in decided]
        async with self.store.begin() as conn:
            insert = self.store.insert(t.outbox).on_conflict_do_nothing(index_elements=["event_id"])
            await conn.execute(insert, rows)
        for prompt_id, event in decided:
            self.projection.in_flight[event.event_id] = prompt_id
            self.unpublished[event.event_id] = event
            log.info("decision for %s: %s", prompt_id, type(event).__name__)

    async def publish(self) -> None:
        """Publish what the stream has not acknowledged yet (stops at the first failure)."""
        for event_id, event in list(self.unpublished.items()):
            if event_id not in self.projection.in_flight:
                self.unpublished.pop(event_id, None)  # already back through the stream
                continue
            try:
                await self.bus.publish(event)
            except BusError as exc:
                log.warning("decision %s not published yet: %s", event_id, exc)
                return
            self.unpublished.pop(event_id, None)


async def publish_dead_letters(bus: EventBus, letters: Sequence[DeadLetter]) -> None:
    """Each dead letter on ``promptlab.deadletter`` with its reason and sequence."""
    for letter in letters:
        headers = {
            Header.DEAD_LETTER_REASON.value: letter.reason[:500],
            Header.ORIGINAL_SEQUENCE.value: str(letter.sequence),
        }
        try:
            await bus.publish_raw(Subject.DEAD_LETTER.value, letter.data, headers)
        except Exception as exc:  # the bytes stay in the stream at their sequence
            log.error("dead letter for sequence %d not published: %s", letter.sequence, exc)


async def publish_status(bus: EventBus, lease: Lease, projection: Projection, state: str) -> None:
    """This learner's :class:`LearnerStatus` in the ``promptlab_learner`` bucket (the TUI
    header, ``promptlab stats``, ``/metrics``); best effort, the next one follows soon."""
    status = LearnerStatus(
        state=state,  # type: ignore[arg-type]
        holder=lease.holder,
        host=socket.gethostname(),
        pid=os.getpid(),
        lease=lease.backend,
        sequence=projection.position,
        updated_ms=int(time.time() * 1000),
        counters={k: v for k, v in projection.counters.items() if k != "clock_ms"},
    )
    try:
        await bus.kv_put(Bucket.LEARNER.value, "status", status.encode())
    except Exception as exc:
        log.debug("learner status not written: %s", exc)
