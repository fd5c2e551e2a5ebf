"""Analytics snapshots: each prompt's recent periods, written to JetStream KV for the TUI.

:func:`build_analytics` runs :func:`learner.storage.periods.period_analytics` over the
last :data:`HOURS` hours and :data:`DAYS` days before the prompt's newest event (event
time, never the wall clock) and packs both into one
:class:`~events.snapshots.AnalyticsSnapshot`, the shape of ``promptlab analytics --json``.
:class:`AnalyticsWriter` writes the snapshots of prompts that saw traffic to bucket
``promptlab_analytics``, at most every ``learner.analytics_interval_s``.

These reports read raw executions (for latency percentiles and unique subjects), which
costs more than the per-minute snapshots, so they run beside the consuming loop on their
own task and slow cadence, never inside a projection batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from events.bus import BusError, EventBus
from events.snapshots import AnalyticsSnapshot, PeriodSeries
from events.subjects import Bucket
from learner.storage.periods import Interval, period_analytics, period_start
from learner.storage.store import Store

log = logging.getLogger(__name__)

HOURS = 24
"""Hours shown at interval ``hour`` (the newest one included)."""
DAYS = 14
"""Days shown at interval ``day``."""
TOP_VALUES = 5
"""Most used values kept per variable and period."""
_POLL_S = 0.5  # how soon a first round follows activation or the first traffic

_WINDOWS: tuple[tuple[Interval, timedelta], ...] = (
    ("hour", timedelta(hours=HOURS - 1)),
    ("day", timedelta(days=DAYS - 1)),
)


async def build_analytics(
    store: Store, prompt_id: str, *, learner_sequence: int = 0
) -> AnalyticsSnapshot | None:
    """The analytics snapshot of ``prompt_id`` (None before its first execution)."""
    row = await store.prompt_row(prompt_id)
    newest = int(row["last_event_ms"]) if row else 0
    if newest <= 0:
        return None
    now = datetime.fromtimestamp(newest / 1000, UTC)
    series = []
    for interval, back in _WINDOWS:
        report = await period_analytics(
            store,
            prompt_id,
            interval=interval,
            start=period_start(now - back, interval),
            top=TOP_VALUES,
        )
        series.append(PeriodSeries.model_validate(report.to_dict()))
    return AnalyticsSnapshot(prompt_id=prompt_id, series=series, learner_sequence=learner_sequence)


class AnalyticsWriter:
    """Writes the analytics snapshots of prompts marked as changed, on a slow cadence."""

    def __init__(self, bus: EventBus, store: Store, *, interval_s: float) -> None:
        self.bus = bus
        self.store = store
        self.interval_s = interval_s
        """Seconds between two rounds (0: never write)."""
        self.dirty: set[str] = set()
        self.last_bytes: dict[str, bytes] = {}
        self.writes = 0

    def mark(self, prompt_ids: Iterable[str]) -> None:
        """These prompts changed: write their snapshots in the next round."""
        if self.interval_s > 0:
            self.dirty.update(prompt_ids)

    async def flush(self, *, learner_sequence: int) -> int:
        """Write every marked prompt whose snapshot changed; returns how many were written."""
        written = 0
        for prompt_id in sorted(self.dirty):
            snapshot = await build_analytics(  # a failure leaves it marked for the next round
                self.store, prompt_id, learner_sequence=learner_sequence
            )
            self.dirty.discard(prompt_id)
            if snapshot is None:
                continue
            # learner_sequence moves with every batch: compare without it.
            key = snapshot.model_copy(update={"learner_sequence": 0}).encode()
            if self.last_bytes.get(prompt_id) == key:
                continue
            try:
                await self.bus.kv_put(Bucket.ANALYTICS.value, prompt_id, snapshot.encode())
            except BusError as exc:
                log.warning("analytics of %s not written (%s); will retry", prompt_id, exc)
                self.dirty.add(prompt_id)
                continue
            self.last_bytes[prompt_id] = key
            written += 1
        self.writes += written
        return written

    async def run(
        self,
        stopping: asyncio.Event,
        *,
        active: Callable[[], bool],
        sequence: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Write marked prompts every ``interval_s`` (the first round as soon as there is
        something to write) until ``stopping`` is set; only while ``active()``, since only
        the learner holding the lease writes. The clock decides when, never what."""
        if self.interval_s <= 0:
            return
        last = -float("inf")
        while not stopping.is_set():
            now = clock()
            if active() and self.dirty and now - last >= self.interval_s:
                last = now
                try:
                    await self.flush(learner_sequence=sequence())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a database hiccup: the next round tries again
                    log.warning("analytics snapshots not written: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), min(self.interval_s, _POLL_S))
