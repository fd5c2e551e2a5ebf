"""Plain summaries of a sample: spread and percentiles (no inference)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def sample_std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (ddof = 1); None below two values."""
    return float(np.std(values, ddof=1)) if len(values) >= 2 else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100, linear interpolation); None when empty."""
    return float(np.percentile(values, q)) if len(values) else None
