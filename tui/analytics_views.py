"""The detail screen's analytics tab: a prompt's recent periods as charts, pure text.

Drawn from the learner's :class:`~events.snapshots.AnalyticsSnapshot` (bucket
``promptlab_analytics``): one sparkline per variant for calls, quality, latency p50 and
p95 and cost per period, each with its value in the newest period and the change against
the period before; then the most used variable values of the newest period, every
variant together.
Each period is as many characters wide as the screen allows, on one time axis for all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text

from promptlab.events.snapshots import PeriodSeries, VariableValues, VariantPeriod
from promptlab.tui import format as fmt
from promptlab.tui.live_prompt import LivePrompt
from promptlab.tui.plots import sparkline
from promptlab.tui.views import STATUS_STYLE

INTERVALS = ("hour", "day")
"""Intervals the learner publishes, in the order the ``i`` key cycles through them."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One chart: what it reads of a period, how its values and changes read."""

    title: str
    value: Callable[[VariantPeriod], float | None]
    trend: str
    """The key of :attr:`VariantPeriod.trends` that holds the change."""
    text: Callable[[float | None], str]
    change: Callable[[float], str]
    style: str
    floor: float | None = None
    """Bottom of the scale (None: the data's minimum)."""
    shared: bool = False
    """One scale for every variant (to compare them); else each row has its own, which
    shows the shape of a small variant's series next to a big one."""


def _signed_count(x: float) -> str:
    return f"{x:+,.0f}"


def _signed_ms(x: float) -> str:
    return f"{x:+,.0f}ms"


def _signed_usd(x: float) -> str:
    sign = "-" if x < 0 else "+"
    return f"{sign}${abs(x):.4f}" if abs(x) < 1 else f"{sign}${abs(x):,.2f}"


def _usd(x: float | None) -> str:
    return fmt.DASH if x is None else (f"${x:.4f}" if x < 1 else f"${x:,.2f}")


METRICS: tuple[Metric, ...] = (
    Metric("Calls", lambda p: p.executions, "executions", fmt.count, _signed_count, "cyan", 0.0),
    Metric(
        "Quality (mean reward)",
        lambda p: p.quality,
        "quality",
        fmt.reward,
        lambda x: f"{x:+.2f}".replace("-0.00", "+0.00"),
        "green",
        shared=True,
    ),
    Metric(
        "Latency p50", lambda p: p.latency_p50_ms, "latency_p50_ms", fmt.ms, _signed_ms, "yellow"
    ),
    Metric(
        "Latency p95", lambda p: p.latency_p95_ms, "latency_p95_ms", fmt.ms, _signed_ms, "yellow"
    ),
    Metric("Cost", lambda p: p.cost_usd, "cost_usd", _usd, _signed_usd, "magenta", 0.0),
)


def _label(start: datetime, interval: str) -> str:
    return start.strftime("%m-%d %H:%M" if interval == "hour" else "%Y-%m-%d")


def analytics_text(prompt: LivePrompt, interval: str, width: int) -> Text:
    """The charts of ``prompt`` at ``interval`` (``hour`` or ``day``), ``width`` wide."""
    snapshot = prompt.analytics
    series = snapshot.interval(interval) if snapshot is not None else None
    out = Text()
    out.append(f"Per {interval}", style="bold")
    out.append("  (i: hour / day, UTC, event time)\n", style="dim")
    if series is None or not series.periods:
        out.append(
            "No analytics yet: the learner publishes them every "
            "learner.analytics_interval_s once the prompt has traffic.",
            style="dim",
        )
        return out
    starts = sorted({p.start for p in series.periods})
    names = _variants(prompt, series)
    label = max(len(n) for n in names) + 1
    tail = 24  # newest value and its change
    span = max(1, (width - label - tail) // len(starts))
    plot = span * len(starts)
    first, last = _label(starts[0], interval), _label(starts[-1], interval)
    axis = first + " " * (plot - len(first) - len(last)) + last
    out.append(" " * label + (axis if len(axis) == plot else first) + "\n", style="dim")
    cells = {(p.start, p.variant): p for p in series.periods}
    for metric in METRICS:
        rows = {n: [_value(metric, cells.get((s, n))) for s in starts] for n in names}
        known = [v for row in rows.values() for v in row if v is not None]
        if not known:
            continue
        out.append(metric.title, style="bold")
        if metric.shared:
            low, high = _scale(metric, known)
            out.append(f"  (scale {metric.text(low)}–{metric.text(high)})\n", style="dim")  # noqa: RUF001
        else:
            out.append("  (each row on its own scale)\n", style="dim")
        for name in names:
            if not metric.shared:
                low, high = _scale(metric, [v for v in rows[name] if v is not None] or [0.0])
            line = "".join(ch * span for ch in sparkline(rows[name], low=low, high=high))
            out.append(f"{name:<{label}}", style=_style(prompt, name))
            out.append(line, style=metric.style)
            newest = cells.get((starts[-1], name))
            value = None if newest is None else metric.value(newest)
            change = None if newest is None else newest.trends.get(metric.trend)
            out.append(f" {metric.text(value):>10}")
            if change is not None:
                shown = metric.change(change)
                out.append(f" {shown:>11}", style=_change_style(shown))
            out.append("\n")
    _top_values(out, series, interval, width)
    return out


def _scale(metric: Metric, values: Sequence[float]) -> tuple[float, float]:
    return (min(values) if metric.floor is None else metric.floor), max(values)


def _variants(prompt: LivePrompt, series: PeriodSeries) -> list[str]:
    """Variants with periods in the series: in the stats snapshot's order, then the rest."""
    present = {p.variant for p in series.periods}
    ordered = [v.variant for v in prompt.variants() if v.variant in present]
    return ordered + sorted(present - set(ordered))


def _value(metric: Metric, period: VariantPeriod | None) -> float | None:
    return None if period is None else metric.value(period)


def _style(prompt: LivePrompt, variant: str) -> str:
    v = prompt.variant(variant)
    return STATUS_STYLE.get(v.status, "") if v is not None else "dim"


def _change_style(shown: str) -> str:
    """Green up, red down, dim for a change that rounds to nothing."""
    if not any(ch in shown for ch in "123456789"):
        return "dim"
    return "red" if shown.startswith("-") else "green"


def _top_values(out: Text, series: PeriodSeries, interval: str, width: int) -> None:
    newest = series.all_variants[-1] if series.all_variants else None
    out.append("\nMost used variable values", style="bold")
    if newest is None or not newest.top_values:
        out.append(
            f"  none recorded in the newest {interval} (enum, boolean and number variables, "
            "and strings with analytics = true, are)\n",
            style="dim",
        )
        return
    out.append(
        f"  {_label(newest.start, interval)}, every variant, {fmt.count(newest.executions)} "
        f"calls; change against the {interval} before\n",
        style="dim",
    )
    name_width = max(len(v.variable) for v in newest.top_values) + 1
    shown = [str(c.value) for v in newest.top_values for c in v.values]
    value_width = min(24, max((len(s) for s in shown), default=5)) + 1
    bar = max(8, min(30, width - name_width - value_width - 28))
    for variable in newest.top_values:
        _variable_rows(out, variable, name_width, value_width, bar)


def _variable_rows(
    out: Text, variable: VariableValues, name_width: int, value_width: int, bar: int
) -> None:
    rows = [(_shown(c.value), c.count, c.change) for c in variable.values]
    if variable.other:
        rows.append(("(other)", variable.other, None))
    for i, (value, count, change) in enumerate(rows):
        share = count / variable.recorded if variable.recorded else 0.0
        out.append(f"{variable.variable if i == 0 else '':<{name_width}}", style="bold")
        out.append(f"{fmt.clip(value, value_width - 1):<{value_width}}")
        filled = round(share * bar)
        out.append("█" * filled, style="cyan")
        out.append("·" * (bar - filled), style="dim")
        out.append(f" {fmt.pct(share):>4} {fmt.count(count):>6}")
        if change:
            out.append(f" {change:+d}", style=_change_style(f"{change:+d}"))
        out.append("\n")


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
