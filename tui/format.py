"""Number formatting shared by every screen, so a reward or a cost reads the same everywhere.

Each function takes ``None`` for "not known yet" and returns an em dash, because a blank
cell reads as a rendering bug while a dash reads as "no data".
"""

from __future__ import annotations

from datetime import datetime

DASH = "—"


def pct(value: float | None, *, digits: int = 0) -> str:
    """``0.1234`` -> ``"12%"``."""
    if value is None:
        return DASH
    return f"{value * 100:.{digits}f}%"


def prob(value: float | None) -> str:
    """A probability as ``0.97``; values that round to certainty say so with < or >."""
    if value is None:
        return DASH
    if value >= 0.995:
        return ">.99"
    if value <= 0.005:
        return "<.01"
    return f"{value:.2f}"


def reward(mean: float | None, low: float | None = None, high: float | None = None) -> str:
    """``0.62 [.58,.66]``: the mean with its interval, compact enough for a table cell."""
    if mean is None:
        return DASH
    if low is None or high is None:
        return f"{mean:.2f}"
    return f"{mean:.2f} [{_short(low)},{_short(high)}]"


def reward_pm(mean: float | None, low: float | None = None, high: float | None = None) -> str:
    """``0.71 ±.01``: the interval as a half-width, for the narrow overview column."""
    if mean is None:
        return DASH
    if low is None or high is None:
        return f"{mean:.2f}"
    return f"{mean:.2f} ±{_short((high - low) / 2)}"


def _short(value: float) -> str:
    """``0.58`` -> ``".58"``: interval ends drop the leading zero to save columns."""
    text = f"{value:.2f}"
    if text.startswith("0."):
        return text[1:]
    if text.startswith("-0."):
        return "-" + text[2:]
    return text


def cost_per_1k(cost_mean_usd: float | None) -> str:
    """Mean cost of one call -> dollars per 1,000 calls (``$1.25``)."""
    if cost_mean_usd is None:
        return DASH
    per_k = cost_mean_usd * 1000
    if per_k == 0:
        return "$0"
    if per_k < 0.01:
        return "<$0.01"
    return f"${per_k:,.2f}"


def usd(value: float | None) -> str:
    """Cost of one call, with enough digits for fractions of a cent."""
    if value is None:
        return DASH
    if value == 0:
        return "$0"
    return f"${value:.5f}" if value < 0.01 else f"${value:.3f}"


def ms(value: float | None) -> str:
    """Milliseconds; seconds once a call takes longer than ten of them."""
    if value is None:
        return DASH
    if value >= 10_000:
        return f"{value / 1000:.1f}s"
    return f"{value:.0f}ms"


def count(value: int | float | None) -> str:
    """``12345`` -> ``"12.3k"``: counts grow without bound, columns do not."""
    if value is None:
        return DASH
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    return f"{value:,.0f}"


def clock(moment: datetime | str | None) -> str:
    """Time of day of an event (``14:03:27``), from the event's own timestamp.

    Never "3 s ago": relative times would need the wall clock at render time, which makes
    snapshots non-deterministic and drifts while nothing arrives.
    """
    parsed = _parse(moment)
    if parsed is None:
        return DASH if not moment else str(moment)[:19]
    return parsed.strftime("%H:%M:%S")


def stamp(moment: datetime | str | None) -> str:
    """Date and time of a decision (``05-14 14:03``): decisions are rare and can be days old."""
    parsed = _parse(moment)
    if parsed is None:
        return DASH if not moment else str(moment)[:16]
    return parsed.strftime("%m-%d %H:%M")


def _parse(moment: datetime | str | None) -> datetime | None:
    """An event timestamp as a datetime; None when missing or unreadable."""
    if isinstance(moment, datetime):
        return moment
    if not moment:
        return None
    try:
        return datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return None


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
