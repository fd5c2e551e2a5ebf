"""Sticky assignments: which variant a returning subject keeps, shared by every replica.

A subject seen for the first time is assigned by the *current* routing table (Thompson
shares, so traffic still moves toward a better variant), at a point of [0, 1) hashed
from prompt and subject. The assignment remembers the table's shares ``p0`` and a
second hashed point ``u``. A returning subject keeps its variant ``a`` while
``u * p0[a] < p[a]`` under the current shares ``p``: always while ``a``'s share has not
fallen, and with probability ``p[a] / p0[a]`` once it has. A subject that does not
keep it moves to a variant whose share grew since ``p0`` (in proportion to the growth)
and is assigned anew. Among the subjects assigned under ``p0``, the ones that stay
plus the ones that move in make up exactly ``p[b]`` on every variant ``b``, so a call
of a subject is on ``a`` with probability ``p[a]``, the probability the router logs
and the learner's allocation-aware test weights by. It is the maximal coupling of the
two tables: as few subjects change variant as the shift in traffic requires, and
traffic moves toward a better variant for returning subjects too (with "keep until the
variant is retired", 500 subjects cost up to 75% more regret in ``python -m bench
--only simulation``; with the coupling every row is within 10% of routing each call
afresh).

:class:`Assignments` is the router's synchronous, bounded local cache (least recently
used entries go first). New assignments (first calls and moves; never a subject that
stays) are queued for :func:`share_assignments`, which writes them to the JetStream KV
bucket ``promptlab_assignments`` (its entries expire after
``events.subjects.ASSIGNMENT_TTL_S``); :func:`watch_assignments` fills every replica's
cache from that bucket. Every replica decides a returning subject from the same stored
assignment and the same hashed points, so with the same snapshot they agree. The key is
a hash of prompt and subject: the subject itself is never stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from promptlab.events.bus import EventBus, KVEntry
from promptlab.events.subjects import Bucket
from promptlab.events.watching import follow

log = logging.getLogger(__name__)

CAPACITY = 50_000
"""Assignments kept per process (about 10 MB); older ones are re-read from KV as they
come back through the watch, or re-assigned."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """A subject's variant and the table it was assigned under."""

    variant: str
    shares: Mapping[str, float]
    """Every live variant's share in the table of the assignment (``p0``)."""
    snapshot_version: int
    point: float
    """The subject's point ``u`` of [0, 1) for this assignment (hashed, so every
    replica draws the same)."""

    @property
    def probability(self) -> float:
        """The variant's share when the subject was assigned."""
        return float(self.shares.get(self.variant, 0.0))

    def keeps(self, share_now: float) -> bool:
        """True while the subject stays on its variant, whose share is now ``share_now``."""
        return self.point * self.probability < share_now

    def encode(self) -> bytes:
        return json.dumps(
            {
                "variant": self.variant,
                "s": dict(self.shares),
                "v": self.snapshot_version,
                "u": self.point,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> Assignment:
        raw = json.loads(data)
        variant = str(raw["variant"])
        # An entry written before the coupling carried only the variant's own share.
        shares = raw.get("s") or {variant: float(raw.get("p", 1.0))}
        return cls(
            variant,
            MappingProxyType({str(k): float(v) for k, v in shares.items()}),
            int(raw["v"]),
            float(raw.get("u", 0.0)),
        )


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

    def apply(entry: KVEntry) -> None:
        try:
            assignments.put(entry.key, Assignment.decode(entry.value or b""), share=False)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a sticky assignment %s: %s", entry.key, exc)

    await follow(bus, str(Bucket.ASSIGNMENTS), apply, what="sticky assignment watch", logger=log)
