"""Routing and stats snapshots: built from the store, written to JetStream KV.

:func:`build_snapshots` turns a :class:`PromptView` and its analysis into the
:class:`RoutingSnapshot` every sidecar routes by and the :class:`StatsSnapshot` the TUI
shows. :class:`SnapshotWriter` writes them at most every ``interval_ms`` per prompt
and only when their content changed; a prompt changed inside the interval is written
when the interval is over (the service calls :meth:`SnapshotWriter.flush` on a timer).

Throttling uses the monotonic clock: it decides *when* to publish, never *what*.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from promptlab.events.bus import BusError, EventBus
from promptlab.events.snapshots import (
    ArmPosterior,
    RoutingSnapshot,
    StatsSnapshot,
    TrendPoint,
    VariantStats,
)
from promptlab.events.subjects import Bucket
from promptlab.learner.analysis import PromptAnalysis
from promptlab.learner.projection.decision_log import to_record
from promptlab.learner.storage.store import Store
from promptlab.learner.storage.view import PromptView

log = logging.getLogger(__name__)

TREND_MINUTES = 60
DECISIONS_SHOWN = 20

ViewLoader = Callable[[str], Awaitable[tuple[PromptView, PromptAnalysis] | None]]
"""Loads a prompt's view and analysis (None while it has no champion)."""


async def build_snapshots(
    store: Store, view: PromptView, analysis: PromptAnalysis, *, learner_sequence: int
) -> tuple[RoutingSnapshot, StatsSnapshot]:
    """Both snapshots of one prompt."""
    arms = []
    for arm in view.arms.values():
        a = analysis.arms.get(arm.variant)
        alpha, beta = (a.alpha, a.beta) if a else (1.0, 1.0)
        arms.append(
            ArmPosterior(
                variant=arm.variant,
                version=arm.version,
                alpha=alpha,
                beta=beta,
                status=arm.status,  # type: ignore[arg-type]
                lifecycle=arm.lifecycle,  # type: ignore[arg-type]
            )
        )
    routing = RoutingSnapshot(
        prompt_id=view.prompt_id,
        version=view.last_sequence,
        champion=view.champion,
        arms=arms,
        exploration_cap=view.exploration_cap,
        paused=view.paused,
        holdback_share=view.config.probation_holdback
        if any(a.status == "holdback" for a in view.arms.values())
        else 0.0,
    )
    variants = variant_figures(view, analysis)
    now_minute = view.last_event_ms // 60_000
    trend = [
        TrendPoint(minute=m, variant=v, executions=n, reward_mean=(s / r if r else None))
        for m, v, n, r, s in await store.trend(view.prompt_id, now_minute - TREND_MINUTES + 1)
    ]
    decisions = [to_record(r) for r in await store.decision_rows(view.prompt_id, DECISIONS_SHOWN)]
    stats = StatsSnapshot(
        prompt_id=view.prompt_id,
        version=view.last_sequence,
        champion=view.champion,
        paused=view.paused,
        exploration_cap=view.exploration_cap,
        variants=variants,
        decisions=decisions,
        trend=trend,
        recommendation=analysis.recommendation,
        learner_sequence=learner_sequence,
    )
    return routing, stats


class SnapshotWriter:
    """Writes snapshots of changed prompts to KV, throttled per prompt."""

    def __init__(
        self,
        bus: EventBus,
        store: Store,
        loader: ViewLoader,
        *,
        interval_ms: int = 250,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.store = store
        self.loader = loader
        self.interval = interval_ms / 1000.0
        self.clock = clock
        self.dirty: set[str] = set()
        self.last_written: dict[str, float] = {}
        self.last_bytes: dict[tuple[str, str], bytes] = {}
        self.writes = 0

    def mark(self, prompt_ids: set[str] | list[str]) -> None:
        """These prompts changed: write their snapshots when their interval allows."""
        self.dirty.update(prompt_ids)

    def next_due(self) -> float | None:
        """Seconds until the next dirty prompt may be written (None when none is dirty)."""
        if not self.dirty:
            return None
        now = self.clock()
        return max(
            0.0, min(self.last_written.get(p, -1e18) + self.interval - now for p in self.dirty)
        )

    async def flush(self, *, learner_sequence: int, force: bool = False) -> int:
        """Write every dirty prompt whose interval is over (all with ``force``)."""
        now = self.clock()
        written = 0
        for prompt_id in sorted(self.dirty):
            if not force and now - self.last_written.get(prompt_id, -1e18) < self.interval:
                continue
            loaded = await self.loader(prompt_id)
            self.dirty.discard(prompt_id)
            if loaded is None:
                continue
            view, analysis = loaded
            routing, stats = await build_snapshots(
                self.store, view, analysis, learner_sequence=learner_sequence
            )
            try:
                changed = await self._put(Bucket.ROUTING, prompt_id, routing.encode())
                # The stats snapshot also carries learner_sequence, which moves on every
                # batch; compare it without that field so an idle prompt is not rewritten.
                stats_key = stats.model_copy(update={"learner_sequence": 0}).encode()
                if self.last_bytes.get((Bucket.STATS.value, prompt_id)) != stats_key:
                    await self.bus.kv_put(Bucket.STATS.value, prompt_id, stats.encode())
                    self.last_bytes[(Bucket.STATS.value, prompt_id)] = stats_key
                    changed = True
            except BusError as exc:
                # While NATS is down its owner says so once (events.outage).
                (log.warning if self.bus.connected else log.debug)(
                    "snapshot of %s not written (%s); will retry", prompt_id, exc
                )
                self.dirty.add(prompt_id)
                continue
            self.last_written[prompt_id] = now
            if changed:
                written += 1
        self.writes += written
        return written

    async def _put(self, bucket: Bucket, key: str, value: bytes) -> bool:
        if self.last_bytes.get((bucket.value, key)) == value:
            return False
        await self.bus.kv_put(bucket.value, key, value)
        self.last_bytes[(bucket.value, key)] = value
        return True


def variant_figures(view: PromptView, analysis: PromptAnalysis) -> list[VariantStats]:
    """Every variant's figures: the one read model of a prompt that the stats snapshot
    (the TUI), ``promptlab stats`` and ``/admin`` show."""
    total = sum(a.totals.executions for a in view.arms.values() if a.totals) or 1
    variants = []
    for arm in view.arms.values():
        a = analysis.arms.get(arm.variant)
        life = arm.lifetime
        tot = arm.totals
        variants.append(
            VariantStats(
                variant=arm.variant,
                status=arm.status,  # type: ignore[arg-type]
                lifecycle=arm.lifecycle,  # type: ignore[arg-type]
                model=arm.model,
                version=arm.version,
                origin=arm.origin,
                parent=arm.parent,
                strategy=arm.strategy,
                executions=life.executions if life else 0,
                errors=life.errors if life else 0,
                rewarded=life.rewarded if life else 0,
                window_rewarded=arm.n,
                reward_mean=a.mean if a else (tot.reward_mean if tot else None),
                reward_low=a.low if a else None,
                reward_high=a.high if a else None,
                p_best=a.p_best if a else None,
                p_beats_champion=a.p_beats_champion if a else None,
                traffic_share=(tot.executions if tot else 0) / total,
                cost_mean_usd=life.cost_mean if life else 0.0,
                tokens_mean=life.tokens_mean if life else 0.0,
                latency_p50_ms=arm.latency_p50_ms,
                latency_p95_ms=arm.latency_p95_ms,
            )
        )
    return variants
