"""Breeding's daily caps, kept in NATS so a restart does not reset them.

``max_mutants_per_day`` (per prompt) and ``max_usd_per_day`` (in all) count per UTC day
in KV bucket ``promptlab_breeding`` (key: the day, ``2026-12-07``; value: the
:class:`DayBook` as JSON; entries expire after a week). So a learner killed and started
again, or a standby that takes over, goes on with the day's counts instead of starting
afresh.

* A mutant is counted before its attempt starts (:meth:`BreedingCaps.reserve`): an
  attempt cut off by a crash still counts, and one that cannot be counted (NATS away)
  is not made.
* Every model call the breeder makes goes through :class:`CountingClient`, which adds
  its cost (and one call) to the day's book as soon as it returns: the mutator, the
  champion's and the mutant's offline runs and the judge alike; a failed call counts
  as a call with no cost.

The caps are checked before each attempt, so one attempt can go over ``max_usd_per_day``
by at most its own cost; after that no attempt starts that day.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from promptlab.events.bus import EventBus
from promptlab.events.subjects import Bucket
from promptlab.lab.client import CompletionLike, ModelClient
from promptlab.learner.config import EvolutionSettings

log = logging.getLogger(__name__)


@dataclass
class DayBook:
    """What breeding spent on one UTC day."""

    day: str
    mutants: dict[str, int] = field(default_factory=dict)
    """Mutants bred (attempts started) per prompt."""
    spend_usd: float = 0.0
    """Cost of every model call the breeder made (calls without a known cost add 0)."""
    calls: int = 0
    """Model calls the breeder made, failed ones included."""

    @classmethod
    def decode(cls, day: str, raw: bytes | None) -> DayBook:
        """The book stored for ``day``; a fresh one when absent or unreadable."""
        if not raw:
            return cls(day)
        try:
            data = json.loads(raw)
            return cls(
                day=day,
                mutants={str(k): int(v) for k, v in dict(data.get("mutants", {})).items()},
                spend_usd=float(data.get("spend_usd", 0.0)),
                calls=int(data.get("calls", 0)),
            )
        except (ValueError, TypeError, AttributeError):
            log.warning("breeding book for %s is unreadable: starting it again", day)
            return cls(day)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


class BreedingCaps:
    """The day's book, read from and written to KV; every change written at once."""

    def __init__(
        self,
        settings: EvolutionSettings,
        bus: EventBus,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self.clock = clock
        self.book = DayBook("")
        self._lock = asyncio.Lock()

    def today(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).date().isoformat()

    async def _current(self) -> DayBook:
        day = self.today()
        if self.book.day != day:
            entry = await self.bus.kv_get(str(Bucket.BREEDING), day)
            self.book = DayBook.decode(day, entry.value if entry is not None else None)
        return self.book

    async def _write(self) -> None:
        await self.bus.kv_put(str(Bucket.BREEDING), self.book.day, self.book.encode())

    async def allows(self, prompt_id: str) -> bool:
        """True when ``prompt_id`` may have another mutant today (False when the book
        cannot be read: no count, no breeding)."""
        try:
            async with self._lock:
                book = await self._current()
        except Exception as exc:
            log.info("breeding waits: the day's caps cannot be read (%s)", exc)
            return False
        within = (
            book.mutants.get(prompt_id, 0) < self.settings.max_mutants_per_day
            and book.spend_usd < self.settings.max_usd_per_day
        )
        if not within:
            log.info(
                "breeding for %s waits: daily cap reached (%d of %d mutants, $%.4f of $%.4f)",
                prompt_id,
                book.mutants.get(prompt_id, 0),
                self.settings.max_mutants_per_day,
                book.spend_usd,
                self.settings.max_usd_per_day,
            )
        return within

    async def reserve(self, prompt_id: str) -> bool:
        """Count one mutant for ``prompt_id`` before its attempt; False when the count
        could not be stored (the attempt is then not made)."""
        try:
            async with self._lock:
                book = await self._current()
                before = book.mutants.get(prompt_id, 0)
                book.mutants[prompt_id] = before + 1
                try:
                    await self._write()
                except Exception:
                    book.mutants[prompt_id] = before  # no attempt, so no count
                    raise
        except Exception as exc:
            log.warning("breeding for %s skipped: its count cannot be stored (%s)", prompt_id, exc)
            return False
        return True

    async def spent(self, cost_usd: float | None) -> None:
        """Add one call and its cost to the day's book (kept in memory when NATS is away,
        written with the next change)."""
        async with self._lock:
            try:
                book = await self._current()
            except Exception:
                book = self.book
            book.calls += 1
            book.spend_usd += float(cost_usd or 0.0)
            try:
                await self._write()
            except Exception as exc:
                log.warning("breeding spend not stored yet (%s)", exc)


class CountingClient:
    """A :class:`~lab.client.ModelClient` that books every call's cost in ``caps``."""

    def __init__(self, inner: ModelClient, caps: BreedingCaps) -> None:
        self.inner = inner
        self.caps = caps

    async def complete(
        self, model: str, body: dict[str, Any], *, timeout_s: float | None = None
    ) -> CompletionLike:
        try:
            result = await self.inner.complete(model, body, timeout_s=timeout_s)
        except BaseException:
            await asyncio.shield(self.caps.spent(None))
            raise
        await self.caps.spent(result.cost_usd)
        return result
