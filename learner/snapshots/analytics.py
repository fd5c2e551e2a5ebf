"""Analytics snapshots: each prompt's recent periods, written to JetStream KV for the TUI.

:func:`build_analytics` runs :func:`learner.storage.periods.period_analytics` over the
last :data:`HOURS` hours and :data:`DAYS` days before the prompt's newest event (event
time, never the wall clock) and packs both into one
:class:`~events.snapshots.AnalyticsSnapshot`, the shape of ``promptlab analytics --json``.
:class:`AnalyticsWriter` writes the snapshots of prompts that saw traffic to bucket
``promptlab_analytics``, at most every ``learner.analytics_interval_s``.

These reports read raw executions (for latency percentiles and unique subjects), which
costs more than the per-minute snapshots, so they run beside the consuming loop on their
own task and slow cadence, never inside a projection batch. The day series, which reads
14 days of them (665 ms for a prompt with 200,000 calls), is rebuilt at most every
:data:`DAY_REFRESH_S` while its days stay the same; the hour series (24 hours) every round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime, timedelta

from promptlab.events.bus import BusError, EventBus
from promptlab.events.snapshots import AnalyticsSnapshot, PeriodSeries
from promptlab.events.subjects import Bucket
from promptlab.learner.periodic import every
from promptlab.learner.storage.periods import Interval, period_analytics, period_start
from promptlab.learner.storage.store import Store

log = logging.getLogger(__name__)

HOURS = 24
"""Hours shown at interval ``hour`` (the newest one included)."""
DAYS = 14
"""Days shown at interval ``day``."""
TOP_VALUES = 5
"""Most used values kept per variable and period."""
DAY_REFRESH_S = 300.0
"""Seconds a prompt's day series is reused (while its newest day is the same)."""

_WINDOWS: tuple[tuple[Interval, timedelta], ...] = (
    ("hour", timedelta(hours=HOURS - 1)),
    ("day", timedelta(days=DAYS - 1)),
)


async def build_analytics(
    store: Store,
    prompt_id: str,
    *,
    learner_sequence: int = 0,
    cache: dict[str, tuple[datetime, PeriodSeries]] | None = None,
    reuse: Collection[str] = (),
) -> AnalyticsSnapshot | None:
    """The analytics snapshot of ``prompt_id`` (None before its first execution).

    ``cache`` keeps each interval's series with the start of its window (updated here);
    an interval in ``reuse`` takes its cached series as it is while its window starts at
    the same period."""
    row = await store.prompt_row(prompt_id)
    newest = int(row["last_event_ms"]) if row else 0
    if newest <= 0:
        return None
    now = datetime.fromtimestamp(newest / 1000, UTC)
    series = []
    for interval, back in _WINDOWS:
        start = period_start(now - back, interval)
        earlier = cache.get(interval) if cache is not None else None
        if interval in reuse and earlier is not None and earlier[0] == start:
            series.append(earlier[1])
            continue
        report = await period_analytics(
            store, prompt_id, interval=interval, start=start, top=TOP_VALUES
        )
        built = PeriodSeries.model_validate(report.to_dict())
        if cache is not None:
            cache[interval] = (start, built)
        series.append(built)
    return AnalyticsSnapshot(prompt_id=prompt_id, series=series, learner_sequence=learner_sequence)


class AnalyticsWriter:
    """Writes the analytics snapshots of prompts marked as changed, on a slow cadence."""

    def __init__(
        self,
        bus: EventBus,
        store: Store,
        *,
        interval_s: float,
        day_refresh_s: float = DAY_REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.store = store
        self.interval_s = interval_s
        """Seconds between two rounds (0: never write)."""
        self.day_refresh_s = day_refresh_s
        self.clock = clock
        self.dirty: set[str] = set()
        self.last_bytes: dict[str, bytes] = {}
        self.cache: dict[str, dict[str, tuple[datetime, PeriodSeries]]] = {}
        """Each prompt's series by interval, with their windows' starts."""
        self.days_built: dict[str, float] = {}
        """When (clock) each prompt's day series was last built."""
        self.writes = 0

    def mark(self, prompt_ids: Iterable[str]) -> None:
        """These prompts changed: write their snapshots in the next round."""
        if self.interval_s > 0:
            self.dirty.update(prompt_ids)

    async def flush(self, *, learner_sequence: int) -> int:
        """Write every marked prompt whose snapshot changed; returns how many were written."""
        written = 0
        for prompt_id in sorted(self.dirty):
            now = self.clock()
            fresh = now - self.days_built.get(prompt_id, -float("inf")) < self.day_refresh_s
            snapshot = await build_analytics(  # a failure leaves it marked for the next round
                self.store,
                prompt_id,
                learner_sequence=learner_sequence,
                cache=self.cache.setdefault(prompt_id, {}),
                reuse=("day",) if fresh else (),
            )
            self.dirty.discard(prompt_id)
            if not fresh:
                self.days_built[prompt_id] = now
            if snapshot is None:
                continue
            # learner_sequence moves with every batch: compare without it.
            key = snapshot.model_copy(update={"learner_sequence": 0}).encode()
            if self.last_bytes.get(prompt_id) == key:
                continue
            try:
                await self.bus.kv_put(Bucket.ANALYTICS.value, prompt_id, snapshot.encode())
            except BusError as exc:
                # While NATS is down its owner says so once (events.outage).
                (log.warning if self.bus.connected else log.debug)(
                    "analytics of %s not written (%s); will retry", prompt_id, exc
                )
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
        await every(
            self.interval_s,
            stopping,
            lambda: self.flush(learner_sequence=sequence()),
            active=active,
            due=lambda: bool(self.dirty),
            what="analytics snapshots",
            logger=log,
            clock=clock,
        )
