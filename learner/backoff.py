"""The learner's retry delay: doubling from 50 ms up to a cap, back to the start after
a success. The consuming loop and the batch that waits for its database share it."""

from __future__ import annotations

MAX_BACKOFF_S = 2.0
"""The longest wait between two attempts."""


class Backoff:
    """Delays of 0.05, 0.1, 0.2, ... seconds, at most ``cap``."""

    def __init__(self, start: float = 0.05, cap: float = MAX_BACKOFF_S) -> None:
        self.start = start
        self.cap = cap
        self.delay = start

    def next(self) -> float:
        """The delay to wait now; the following one doubles."""
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        """An attempt worked: the next failure waits the shortest delay again."""
        self.delay = self.start
