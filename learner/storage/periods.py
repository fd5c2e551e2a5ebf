"""Analytics by period: per variant and per hour, day, week or month, with trends.

Every figure is in event time (an execution's ``occurred_at``, UTC), never the wall
clock, so the same stream always gives the same report. Periods start on the hour, at
midnight, on Monday at midnight (ISO weeks) or on the first of the month.

Where the figures come from:

* counters (executions, error and success rates, tokens, cost, reward, satisfaction)
  from ``minute_buckets``, the per-minute aggregates the learner keeps for good: they
  survive ``learner.retention_days``, which deletes raw executions only;
* latency p50/p95 and unique subjects from the raw ``executions`` rows (nearest-rank
  percentiles); for a period whose raw rows are gone they are None, and
  ``raw_executions`` says how many rows were left to compute them from;
* the most used variable values (``top_values``) from ``variable_values``, counts per
  hour that are kept for good too. Only values the prompt lets analytics record are
  there (see :mod:`prompts.analytics`). Each lists the ``top`` values, most used first
  (ties by value), how many calls ``recorded`` the variable, the ``other`` calls not
  listed, and each value's ``change`` against the previous period. A range that ends
  inside an hour counts that whole hour's values. ``all_variants`` gives the same per
  period for every variant together.

Definitions: ``error_rate`` is the share of calls with status ``error`` and
``success_rate`` the rest (a cancelled call is no error); ``quality`` is the mean reward
of the rewarded calls; ``satisfaction`` the share of rewarded calls whose feedback was
positive (>= 0.5 on 0..1). ``trends`` hold each figure minus the same variant's figure in
the previous period (None when either is unknown or there was no previous period).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select

from promptlab.events.snapshots import PeriodTotals, ValueCount, VariableValues
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.percentiles import nearest_rank
from promptlab.learner.storage.schema import MICRO, NANO, OTHER_VALUE
from promptlab.learner.storage.values import parse_value

if TYPE_CHECKING:
    from promptlab.learner.storage.store import Store

Interval = Literal["hour", "day", "week", "month"]
INTERVALS: tuple[Interval, ...] = ("hour", "day", "week", "month")

TREND_FIELDS = (
    "executions",
    "unique_subjects",
    "latency_p50_ms",
    "latency_p95_ms",
    "success_rate",
    "error_rate",
    "tokens",
    "cost_usd",
    "quality",
    "satisfaction",
)


def period_start(moment: datetime, interval: Interval) -> datetime:
    """The start of the period of ``interval`` that contains ``moment`` (UTC)."""
    m = moment.astimezone(UTC)
    if interval == "hour":
        return m.replace(minute=0, second=0, microsecond=0)
    day = m.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_start(start: datetime, interval: Interval) -> datetime:
    """The start of the period after the one starting at ``start``."""
    if interval == "hour":
        return start + timedelta(hours=1)
    if interval == "day":
        return start + timedelta(days=1)
    if interval == "week":
        return start + timedelta(days=7)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month)


@dataclass(slots=True)
class PeriodFigures:
    """One variant in one period."""

    variant: str
    start: datetime
    end: datetime
    executions: int = 0
    errors: int = 0
    rewarded: int = 0
    positive: int = 0
    reward_sum: float = 0.0
    tokens: int = 0
    cost_usd: float = 0.0
    raw_executions: int = 0
    """Raw rows left for this period (fewer than ``executions`` after retention)."""
    unique_subjects: int | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    trends: dict[str, float | None] = field(default_factory=dict)
    top_values: list[VariableValues] = field(default_factory=list)
    """The most used values of each recorded variable (by variable name)."""

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.executions if self.executions else None

    @property
    def success_rate(self) -> float | None:
        return 1.0 - self.errors / self.executions if self.executions else None

    @property
    def quality(self) -> float | None:
        return self.reward_sum / self.rewarded if self.rewarded else None

    @property
    def satisfaction(self) -> float | None:
        return self.positive / self.rewarded if self.rewarded else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("reward_sum", "positive"):
            d.pop(name)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        d.update({name: getattr(self, name) for name in TREND_FIELDS if name not in d})
        d["cost_usd"] = round(self.cost_usd, 9)
        d["trends"] = self.trends
        d["top_values"] = [v.model_dump() for v in self.top_values]
        return d


@dataclass(frozen=True, slots=True)
class PeriodReport:
    """Every variant of one prompt, period by period."""

    prompt_id: str
    interval: Interval
    start: datetime | None
    end: datetime | None
    periods: list[PeriodFigures]
    """Ordered by period start, then variant."""
    all_variants: list[PeriodTotals] = field(default_factory=list)
    """Every variant together, per period: calls and most used values (by start)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "interval": self.interval,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "periods": [p.to_dict() for p in self.periods],
            "all_variants": [p.model_dump(mode="json") for p in self.all_variants],
        }


def _ms(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def period_analytics(
    store: Store,
    prompt_id: str,
    *,
    interval: Interval = "day",
    start: datetime | None = None,
    end: datetime | None = None,
    top: int = 5,
) -> PeriodReport:
    """Figures of ``prompt_id`` per variant and period for calls in ``[start, end)``
    (default: all of them), with the ``top`` most used values of each recorded variable.
    ``start`` is rounded down to its period's start."""
    if interval not in INTERVALS:
        raise ValueError(f"interval {interval!r}: use one of {', '.join(INTERVALS)}")
    if top < 0:
        raise ValueError(f"top {top}: must be 0 or more")
    lo = None if start is None else _ms(period_start(start, interval))
    hi = None if end is None else _ms(end)
    m = t.minute_buckets
    bq = select(m).where(m.c.prompt_id == prompt_id)
    e = t.executions
    rq = select(e.c.variant, e.c.occurred_ms, e.c.latency_ms, e.c.subject).where(
        e.c.prompt_id == prompt_id, e.c.variant.is_not(None)
    )
    vv = t.variable_values
    vq = select(vv.c.hour, vv.c.variant, vv.c.variable, vv.c.value, vv.c.count).where(
        vv.c.prompt_id == prompt_id
    )
    if lo is not None:
        bq, rq = bq.where(m.c.minute >= lo // 60_000), rq.where(e.c.occurred_ms >= lo)
        vq = vq.where(vv.c.hour >= lo // _HOUR_MS)
    if hi is not None:
        bq, rq = bq.where(m.c.minute * 60_000 < hi), rq.where(e.c.occurred_ms < hi)
        vq = vq.where(vv.c.hour * _HOUR_MS < hi)
    async with store.engine.connect() as conn:
        buckets = [r._mapping for r in await conn.execute(bq)]
        raws = list(await conn.execute(rq))
        value_rows = list(await conn.execute(vq)) if top else []

    starts: dict[int, datetime] = {}

    def key_of(ms: int) -> datetime:
        hour = ms // 3_600_000
        found = starts.get(hour)
        if found is None:
            found = starts[hour] = period_start(_at(hour * 3_600_000), interval)
        return found

    cells: dict[tuple[datetime, str], PeriodFigures] = {}

    def cell(ms: int, variant: str) -> PeriodFigures:
        begin = key_of(ms)
        figures = cells.get((begin, variant))
        if figures is None:
            figures = cells[(begin, variant)] = PeriodFigures(
                variant, begin, next_start(begin, interval)
            )
        return figures

    for b in buckets:
        f = cell(int(b["minute"]) * 60_000, b["variant"])
        f.executions += int(b["executions"])
        f.errors += int(b["errors"])
        f.rewarded += int(b["rewarded"])
        f.positive += int(b["positive"])
        f.reward_sum += int(b["reward_micro"]) / MICRO
        f.tokens += int(b["tokens"])
        f.cost_usd += int(b["cost_nano"]) / NANO
    latencies: dict[tuple[datetime, str], list[float]] = defaultdict(list)
    subjects: dict[tuple[datetime, str], set[str]] = defaultdict(set)
    for variant, occurred, latency, subject in raws:
        f = cell(int(occurred), variant)
        f.raw_executions += 1
        latencies[(f.start, variant)].append(float(latency))
        if subject is not None:
            subjects[(f.start, variant)].add(subject)
    for k, f in cells.items():
        if f.raw_executions and f.raw_executions >= f.executions:
            f.unique_subjects = len(subjects[k])
            f.latency_p50_ms = nearest_rank(latencies[k], 0.50)
            f.latency_p95_ms = nearest_rank(latencies[k], 0.95)
    counts: dict[tuple[datetime, str | None], _Counts] = {}
    for hour, variant, variable, value, count in value_rows:
        f = cell(int(hour) * _HOUR_MS, variant)
        for key in ((f.start, variant), (f.start, None)):
            per_value = counts.setdefault(key, {}).setdefault(variable, {})
            per_value[value] = per_value.get(value, 0) + int(count)
    periods = sorted(cells.values(), key=lambda f: (f.start, f.variant))
    _add_trends(periods, interval)
    for f in periods:
        f.top_values = _top(counts, f.start, f.variant, interval, top)
    totals: dict[datetime, PeriodTotals] = {}
    for f in periods:
        known = totals.get(f.start)
        totals[f.start] = PeriodTotals(
            start=f.start,
            end=f.end,
            executions=f.executions + (known.executions if known else 0),
            top_values=_top(counts, f.start, None, interval, top),
        )
    return PeriodReport(
        prompt_id,
        interval,
        None if lo is None else _at(lo),
        None if hi is None else _at(hi),
        periods,
        list(totals.values()),
    )


_HOUR_MS = 3_600_000
_Counts = dict[str, dict[str, int]]
"""Variable -> stored value text -> calls."""


def _top(
    counts: dict[tuple[datetime, str | None], _Counts],
    start: datetime,
    variant: str | None,
    interval: Interval,
    top: int,
) -> list[VariableValues]:
    """The ``top`` values of each variable in one cell (``variant`` None: all variants),
    with each value's change against the same cell of the previous period."""
    here = counts.get((start, variant))
    if not here:
        return []
    before = counts.get((period_start(start - timedelta(microseconds=1), interval), variant))
    out = []
    for variable in sorted(here):
        per_value = here[variable]
        previous = None if before is None else before.get(variable, {})
        ranked = sorted(
            ((n, text) for text, n in per_value.items() if text != OTHER_VALUE),
            key=lambda item: (-item[0], item[1]),
        )[:top]
        recorded = sum(per_value.values())
        values = [
            ValueCount(
                value=parse_value(text),
                count=n,
                change=None if previous is None else n - previous.get(text, 0),
            )
            for n, text in ranked
        ]
        out.append(
            VariableValues(
                variable=variable,
                recorded=recorded,
                values=values,
                other=recorded - sum(n for n, _ in ranked),
            )
        )
    return out


def _add_trends(periods: Iterable[PeriodFigures], interval: Interval) -> None:
    by_key = {(f.start, f.variant): f for f in periods}
    for f in by_key.values():
        previous = period_start(f.start - timedelta(microseconds=1), interval)
        before = by_key.get((previous, f.variant))
        for name in TREND_FIELDS:
            a = getattr(f, name)
            b = None if before is None else getattr(before, name)
            f.trends[name] = None if a is None or b is None else a - b
