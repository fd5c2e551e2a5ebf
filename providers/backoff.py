"""The one backoff rule: how long promptlab waits before trying again.

Attempt ``n`` (0 for the first retry) waits ``first * 2**n``, at most ``cap``. With a
random generator the wait is drawn uniformly between 0 and that ("full jitter"), so
clients that failed together do not come back together; never less than what the
other side asked for (an HTTP ``Retry-After``).

Its users: the providers' HTTP retries (jittered, Retry-After-aware:
:mod:`providers.client`) and the learner's loops that wait for NATS or the database
(:class:`Backoff`, no jitter: one learner is active at a time). It lives in
``providers`` because that is the package every other one may import (see the
import-linter contracts in ``pyproject.toml``).
"""

from __future__ import annotations

import random

_MAX_DOUBLINGS = 64
"""Beyond this many doublings any positive ``first`` is past every cap (and
``2**n`` of a long outage's attempt count would overflow a float)."""


def backoff_delay(
    attempt: int,
    *,
    first: float,
    cap: float,
    rng: random.Random | None = None,
    at_least: float | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    ``first * 2**attempt`` capped at ``cap``; with ``rng``, drawn uniformly from 0 up
    to that; never less than ``at_least`` (a Retry-After, which may exceed ``cap``).
    """
    ceiling = min(cap, first * 2.0 ** min(attempt, _MAX_DOUBLINGS))
    delay = rng.uniform(0, ceiling) if rng is not None else ceiling
    return max(delay, at_least or 0.0)


class Backoff:
    """The waits of a loop that retries until it works: attempt 0, 1, 2, ... of
    :func:`backoff_delay`, back to attempt 0 after a success (:meth:`reset`)."""

    def __init__(self, first: float, cap: float, rng: random.Random | None = None) -> None:
        self.first = first
        self.cap = cap
        self.rng = rng
        self.attempt = 0

    def next(self) -> float:
        """The delay to wait now; the following one doubles (up to the cap)."""
        delay = backoff_delay(self.attempt, first=self.first, cap=self.cap, rng=self.rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """An attempt worked: the next failure waits the shortest delay again."""
        self.attempt = 0
