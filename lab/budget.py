"""The run's budget: most calls and most USD; the run stops cleanly at either.

Calls are reserved before a trial starts (its model call plus its judges' calls), so
``max_calls`` is never exceeded. USD is known only after a call: a trial starts only
while the spend so far, plus what the trials in flight are expected to cost (the mean
cost of finished trials), stays under ``max_usd``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Budget:
    max_calls: int | None = None
    max_usd: float | None = None
    calls: int = 0
    """Calls made or reserved."""
    spent_usd: float = 0.0
    finished: int = 0
    in_flight: int = 0
    stopped: bool = False
    """True once a trial was refused for lack of budget."""

    def expected_trial_usd(self) -> float:
        return self.spent_usd / self.finished if self.finished else 0.0

    def try_start(self, calls: int) -> bool:
        """Reserve ``calls`` for one trial; False (and ``stopped``) when over budget."""
        if self.max_calls is not None and self.calls + calls > self.max_calls:
            self.stopped = True
            return False
        if self.max_usd is not None:
            expected = self.spent_usd + (self.in_flight + 1) * self.expected_trial_usd()
            if self.spent_usd >= self.max_usd or (self.finished and expected > self.max_usd):
                self.stopped = True
                return False
        self.calls += calls
        self.in_flight += 1
        return True

    def finish(self, reserved: int, used: int, usd: float) -> None:
        """A trial ended: give back unused calls, add its spend."""
        self.calls -= reserved - used
        self.in_flight -= 1
        self.finished += 1
        self.spent_usd += usd

    def restore(self, calls: int, usd: float, trials: int) -> None:
        """Count what a resumed run already spent."""
        self.calls += calls
        self.spent_usd += usd
        self.finished += trials
