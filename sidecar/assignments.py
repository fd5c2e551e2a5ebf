"""Sticky assignments: which variant a returning subject keeps, shared by every replica.

A subject seen for the first time is assigned by the *current* routing table (Thompson
shares, so traffic still moves toward a better variant); from then on it keeps that
variant while it is live and the champion it was assigned under still leads, and the
routing probability logged for its calls is the one at assignment (what the learner's
allocation-aware test weights by). A promotion or rollback re-assigns everyone once, by
the new table, so the logged probabilities match the new regime.

:class:`Assignments` is the router's synchronous, bounded local cache (least recently
used entries go first). New assignments are queued for :func:`share_assignments`,
which writes them to the JetStream KV bucket ``promptlab_assignments`` (its entries
expire after ``events.subjects.ASSIGNMENT_TTL_S``); :func:`watch_assignments` fills
every replica's cache from that bucket, so a subject keeps its variant whichever
replica serves it. The key is a hash of prompt and subject: the subject itself is never
stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass

from events.bus import EventBus
from events.subjects import Bucket

log = logging.getLogger(__name__)

CAPACITY = 50_000
"""Assignments kept per process (about 10 MB); older ones are re-read from KV as they
come back through the watch, or re-assigned."""
RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class Assignment:
    variant: str
    probability: float
    """The variant's routing share when the subject was assigned."""
    snapshot_version: int
    champion: str = ""
    """The champion when the subject was assigned: the assignment holds while it leads
    (after a promotion or rollback the shares change, and so must the logged probability)."""

    def encode(self) -> bytes:
        return json.dumps(
            {
                "variant": self.variant,
                "p": self.probability,
                "v": self.snapshot_version,
                "c": self.champion,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> Assignment:
        raw = json.loads(data)
        return cls(str(raw["variant"]), float(raw["p"]), int(raw["v"]), str(raw.get("c", "")))


def assignment_key(prompt_id: str, subject: str) -> str:
    """The KV key of one (prompt, subject): a hash, valid as a NATS key, revealing neither."""
    return hashlib.blake2b(f"{prompt_id}\x00{subject}".encode(), digest_size=16).hexdigest()


class Assignments:
    """The local cache of sticky assignments, plus the queue of new ones to share."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._cache: OrderedDict[str, Assignment] = OrderedDict()
        self._new: deque[tuple[str, Assignment]] = deque(maxlen=capacity)
        self._wake: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, key: str) -> Assignment | None:
        a = self._cache.get(key)
        if a is not None:
            self._cache.move_to_end(key)
        return a

    def put(self, key: str, assignment: Assignment, *, share: bool = True) -> None:
        """Remember ``assignment``; ``share``: also queue it for the KV bucket."""
        self._cache[key] = assignment
        self._cache.move_to_end(key)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        if share:
            self._new.append((key, assignment))
            if self._wake is not None:
                self._wake.set()

    def take_new(self) -> list[tuple[str, Assignment]]:
        """The queued new assignments (and forget them)."""
        out = list(self._new)
        self._new.clear()
        return out

    def wake_event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
            if self._new:
                self._wake.set()
        return self._wake


async def share_assignments(bus: EventBus, assignments: Assignments) -> None:
    """Write new assignments to the KV bucket as they are made (runs until cancelled)."""
    wake = assignments.wake_event()
    while True:
        await wake.wait()
        wake.clear()
        batch = assignments.take_new()
        for i, (key, a) in enumerate(batch):
            try:
                await bus.kv_put(str(Bucket.ASSIGNMENTS), key, a.encode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away: keep serving from the local cache
                log.warning("could not share %d sticky assignments (%s)", len(batch) - i, exc)
                break


async def watch_assignments(bus: EventBus, assignments: Assignments) -> None:
    """Fill the local cache from the KV bucket (other replicas' assignments)."""
    while True:
        try:
            async for entry in bus.kv_watch(str(Bucket.ASSIGNMENTS)):
                if entry.value is None:
                    continue
                try:
                    assignments.put(entry.key, Assignment.decode(entry.value), share=False)
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("ignoring a sticky assignment %s: %s", entry.key, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("sticky assignment watch interrupted (%s); retrying", exc)
        await asyncio.sleep(RETRY_S)
