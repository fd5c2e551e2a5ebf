"""Analytics for a period: volume, quality, cost and their trend against the period before.

Periods are in event time: ``end`` defaults to the newest execution's ``occurred_at``
(never the wall clock), so the same stream always gives the same report.

* quality score: mean reward of the rewarded executions;
* satisfaction: share of rewarded executions whose feedback was positive (>= 0.5);
* success rate / error rate: shares of executions with status ``ok`` / ``error``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select

from promptlab.learner.storage import schema as t

if TYPE_CHECKING:
    from promptlab.learner.storage.store import Store


@dataclass(frozen=True, slots=True)
class PeriodStats:
    """Figures of one period."""

    start: datetime
    end: datetime
    executions: int
    unique_subjects: int
    avg_latency_ms: float | None
    success_rate: float | None
    error_rate: float | None
    avg_tokens: float | None
    avg_cost_usd: float | None
    quality_score: float | None
    satisfaction: float | None
    feedback_count: int


@dataclass(frozen=True, slots=True)
class Analytics:
    """A period, the one before it, and the change of each figure."""

    prompt_id: str | None
    current: PeriodStats
    previous: PeriodStats
    trends: dict[str, float | None]
    """``current - previous`` per figure (None when either side has no value)."""

    def to_dict(self) -> dict[str, Any]:
        def period(p: PeriodStats) -> dict[str, Any]:
            d = asdict(p)
            d["start"], d["end"] = p.start.isoformat(), p.end.isoformat()
            return d

        return {
            "prompt_id": self.prompt_id,
            "current": period(self.current),
            "previous": period(self.previous),
            "trends": self.trends,
        }


_TREND_FIELDS = (
    "executions",
    "unique_subjects",
    "avg_latency_ms",
    "success_rate",
    "error_rate",
    "avg_tokens",
    "avg_cost_usd",
    "quality_score",
    "satisfaction",
)


async def analytics(
    store: Store,
    *,
    prompt_id: str | None = None,
    period: timedelta = timedelta(days=1),
    end: datetime | None = None,
) -> Analytics:
    """Figures for ``[end - period, end)`` and for the period before it."""
    e = t.executions
    if end is None:
        async with store.engine.connect() as conn:
            query = select(func.max(e.c.occurred_ms))
            if prompt_id is not None:
                query = query.where(e.c.prompt_id == prompt_id)
            newest = await conn.scalar(query)
        end_ms = int(newest or 0) + 1
    else:
        end_ms = int(end.timestamp() * 1000)
    span = int(period.total_seconds() * 1000)
    current = await _period(store, prompt_id, end_ms - span, end_ms)
    previous = await _period(store, prompt_id, end_ms - 2 * span, end_ms - span)
    trends: dict[str, float | None] = {}
    for name in _TREND_FIELDS:
        a, b = getattr(current, name), getattr(previous, name)
        trends[name] = None if a is None or b is None else a - b
    return Analytics(prompt_id, current, previous, trends)


async def _period(store: Store, prompt_id: str | None, start_ms: int, end_ms: int) -> PeriodStats:
    e = t.executions
    rewarded = e.c.reward.is_not(None)
    query = select(
        func.count(),
        func.count(func.distinct(e.c.subject)),
        func.avg(e.c.latency_ms),
        func.sum(case((e.c.status == "ok", 1), else_=0)),
        func.sum(case((e.c.status == "error", 1), else_=0)),
        func.avg(e.c.input_tokens + e.c.output_tokens),
        func.avg(e.c.cost_usd),
        func.avg(e.c.reward),
        func.sum(case((rewarded & (e.c.feedback_value >= 0.5), 1), else_=0)),
        func.count(e.c.reward),
    ).where(e.c.occurred_ms >= start_ms, e.c.occurred_ms < end_ms)
    if prompt_id is not None:
        query = query.where(e.c.prompt_id == prompt_id)
    async with store.engine.connect() as conn:
        row = (await conn.execute(query)).one()
    n, subjects, latency, ok, errors, tokens, cost, quality, positive, feedback = row
    n, feedback = int(n or 0), int(feedback or 0)

    def share(x: Any) -> float | None:
        return int(x or 0) / n if n else None

    return PeriodStats(
        start=datetime.fromtimestamp(start_ms / 1000, UTC),
        end=datetime.fromtimestamp(end_ms / 1000, UTC),
        executions=n,
        unique_subjects=int(subjects or 0),
        avg_latency_ms=float(latency) if latency is not None else None,
        success_rate=share(ok),
        error_rate=share(errors),
        avg_tokens=float(tokens) if tokens is not None else None,
        avg_cost_usd=float(cost) if cost is not None else None,
        quality_score=float(quality) if quality is not None else None,
        satisfaction=int(positive or 0) / feedback if feedback else None,
        feedback_count=feedback,
    )
