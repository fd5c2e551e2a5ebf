"""The learner's retry waits: the one backoff rule (:mod:`providers.backoff`) from 50 ms
doubling up to 2 s, without jitter (one learner is active at a time), back to the start
after a success. The consuming loop and the batch that waits for its database share it."""

from __future__ import annotations

from promptlab.providers.backoff import Backoff

FIRST_BACKOFF_S = 0.05
"""The first wait after a failure."""
MAX_BACKOFF_S = 2.0
"""The longest wait between two attempts."""


def learner_backoff() -> Backoff:
    """Waits of 0.05, 0.1, 0.2, ... seconds, at most :data:`MAX_BACKOFF_S`."""
    return Backoff(first=FIRST_BACKOFF_S, cap=MAX_BACKOFF_S)
