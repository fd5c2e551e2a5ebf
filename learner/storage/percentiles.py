"""Percentiles of the learner's figures, one definition: the nearest rank.

The ``q``-quantile of ``n`` observations is the one at rank ``max(1, ceil(q n))`` in
ascending order: always an observed value (or, from the latency histogram, the upper edge
of the bucket holding it), never an interpolation. ``stats`` (from the histogram) and
``analytics`` (from the raw calls of a period) both use it, so a p95 means the same thing
in both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def rank(q: float, total: int) -> int:
    """The 1-based rank of the ``q``-quantile (``0 <= q <= 1``) among ``total`` values."""
    return max(1, math.ceil(q * total))


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile of ``values`` (None when empty)."""
    if not values:
        return None
    return sorted(values)[rank(q, len(values)) - 1]


def nearest_rank_counts(counts: Iterable[tuple[float, int]], q: float) -> float | None:
    """The ``q``-quantile of a histogram given as ``(value, count)`` in ascending value
    order (None when it counts nothing)."""
    pairs = list(counts)
    total = sum(c for _, c in pairs)
    if total == 0:
        return None
    wanted, seen = rank(q, total), 0
    for value, count in pairs:
        seen += count
        if seen >= wanted:
            return value
    return pairs[-1][0]
