"""Unicode plots: sparklines of trends and rows of Beta posterior densities.

Plain strings, no widgets and no plotting dependency: they render the same in a
terminal, in an SVG screenshot and in a snapshot test, and fit any width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from promptlab.events.snapshots import ArmPosterior, TrendPoint

BLOCKS = " ▁▂▃▄▅▆▇█"
GAP = "·"
"""Drawn for a minute without data, so a gap is not mistaken for a zero."""


def sparkline(
    values: Sequence[float | None], *, low: float | None = None, high: float | None = None
) -> str:
    """One character per value, scaled between ``low`` and ``high`` (default: the data's range).

    ``None`` is a gap. A value at ``low`` still gets the lowest bar so it is visible.
    """
    known = [v for v in values if v is not None]
    if not known:
        return GAP * len(values)
    lo = min(known) if low is None else low
    hi = max(known) if high is None else high
    span = hi - lo
    out = []
    for value in values:
        if value is None:
            out.append(GAP)
            continue
        level = 1.0 if span <= 0 else (min(max(value, lo), hi) - lo) / span
        out.append(BLOCKS[1 + round(level * (len(BLOCKS) - 2))])
    return "".join(out)


def resample(values: Sequence[float | None], width: int) -> list[float | None]:
    """Keep the newest ``width`` values (a trend scrolls left as minutes pass)."""
    if width <= 0:
        return []
    return list(values[-width:])


# --------------------------------------------------------------------------- trends


def trend_series(
    points: Sequence[TrendPoint], variants: Sequence[str]
) -> tuple[list[int], dict[str, list[float | None]], dict[str, list[float | None]]]:
    """Per-minute reward and traffic-share series of each variant from a snapshot's trend.

    Returns ``(minutes, reward_by_variant, share_by_variant)``; every series has one value
    per minute in ``minutes`` (``None`` where the variant had no data that minute).
    """
    minutes = sorted({p.minute for p in points})
    index = {m: i for i, m in enumerate(minutes)}
    totals = [0] * len(minutes)
    for p in points:
        totals[index[p.minute]] += p.executions
    reward: dict[str, list[float | None]] = {v: [None] * len(minutes) for v in variants}
    share: dict[str, list[float | None]] = {
        v: [0.0 if t else None for t in totals] for v in variants
    }
    for p in points:
        if p.variant not in reward:
            continue
        i = index[p.minute]
        reward[p.variant][i] = p.reward_mean
        if totals[i]:
            share[p.variant][i] = p.executions / totals[i]
    return minutes, reward, share


# --------------------------------------------------------------------------- posteriors


def beta_pdf(x: float, alpha: float, beta: float) -> float:
    """Density of Beta(alpha, beta) at ``x`` via log-gamma, stable for large counts."""
    if x <= 0.0 or x >= 1.0:
        return 0.0
    log_norm = math.lgamma(alpha + beta) - math.lgamma(alpha) - math.lgamma(beta)
    return math.exp(log_norm + (alpha - 1) * math.log(x) + (beta - 1) * math.log1p(-x))


def _beta_spread(alpha: float, beta: float) -> tuple[float, float]:
    mean = alpha / (alpha + beta)
    sd = math.sqrt(alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1)))
    return mean, sd


def density_window(arms: Sequence[ArmPosterior]) -> tuple[float, float]:
    """The reward range where the arms' mass lies (mean ± 4 sd), so peaks are not slivers."""
    if not arms:
        return 0.0, 1.0
    lows, highs = [], []
    for arm in arms:
        mean, sd = _beta_spread(arm.alpha, arm.beta)
        lows.append(mean - 4 * sd)
        highs.append(mean + 4 * sd)
    low, high = max(0.0, min(lows)), min(1.0, max(highs))
    if high - low < 0.02:  # near-certain arms: keep a readable window around them
        mid = (low + high) / 2
        low, high = max(0.0, mid - 0.01), min(1.0, mid + 0.01)
    return low, high


def density_rows(
    arms: Sequence[ArmPosterior], width: int
) -> tuple[float, float, list[tuple[str, str]]]:
    """``(low, high, [(variant, row), ...])``: each arm's density on a shared axis.

    Heights share one scale across arms, so a wide, flat posterior (few observations)
    looks low and a sharp one (many) tall: the picture of how sure the learner is.
    """
    low, high = density_window(arms)
    width = max(width, 4)
    xs = [low + (high - low) * (i + 0.5) / width for i in range(width)]
    densities = {arm.variant: [beta_pdf(x, arm.alpha, arm.beta) for x in xs] for arm in arms}
    peak = max((max(d) for d in densities.values() if d), default=0.0)
    rows = []
    for arm in arms:
        values = densities[arm.variant]
        if peak <= 0:
            rows.append((arm.variant, " " * width))
            continue
        chars = []
        for value in values:
            level = value / peak
            chars.append(" " if level < 0.01 else BLOCKS[max(1, round(level * (len(BLOCKS) - 1)))])
        rows.append((arm.variant, "".join(chars)))
    return low, high, rows


def axis(low: float, high: float, width: int) -> str:
    """A scale line under the density rows: low, middle and high reward."""
    left, mid, right = f"{low:.2f}", f"{(low + high) / 2:.2f}", f"{high:.2f}"
    if width < len(left) + len(mid) + len(right) + 2:
        return (left + " " * max(1, width - len(left) - len(right)) + right)[:width]
    pad_left = (width - len(mid)) // 2 - len(left)
    pad_right = width - len(left) - pad_left - len(mid) - len(right)
    return left + " " * pad_left + mid + " " * pad_right + right
