"""Online FDR control over every challenger a prompt ever tests: e-LOND.

Each challenger's promotion test is an e-process (:mod:`learner.stats.etest`); the
``j``-th test a prompt starts (counting from 1, over the prompt's lifetime, never
reset) may reject at level ``alpha_j = alpha * gamma_j * (R + 1)``, ``R`` the
promotions so far, i.e. when its wealth reaches ``1 / alpha_j``. With
``sum_j gamma_j <= 1`` this keeps the false discovery rate (expected share of false
promotions among promotions) at or below ``alpha`` under any dependence between the
tests (Xu & Ramdas, "Online multiple testing with e-values", AISTATS 2024). Bonferroni
by the number of challengers *live now* bounds nothing over a lifetime: at 0.75% per
null challenger, 50 challengers give a ~31% chance of at least one false promotion.

``gamma_j = 1 / (j (j + 1))`` (sums to 1): the first test gets half the budget, the
tenth ~1%, so early challengers keep their power and a long evolution run pays for its
many tries with stricter thresholds, recovered in part by each true promotion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def gamma(j: int) -> float:
    """The share of the budget of the ``j``-th test (1-based)."""
    if j < 1:
        raise ValueError("tests are numbered from 1")
    return 1.0 / (j * (j + 1))


def log_threshold(alpha: float, j: int, discoveries: int) -> float:
    """``log(1 / alpha_j)``: the log-wealth at which test ``j`` rejects."""
    return -math.log(alpha * gamma(j) * (discoveries + 1))


@dataclass(frozen=True, slots=True)
class ELond:
    """A prompt's e-LOND ledger: how many tests it has started and how many rejected."""

    alpha: float = 0.05
    started: int = 0
    discoveries: int = 0

    def start(self) -> tuple[ELond, int]:
        """Start one more test: the new ledger and the test's number."""
        j = self.started + 1
        return ELond(self.alpha, j, self.discoveries), j

    def threshold(self, j: int) -> float:
        """Log-wealth test ``j`` needs to reject now."""
        return log_threshold(self.alpha, j, self.discoveries)

    def discovered(self) -> ELond:
        return ELond(self.alpha, self.started, self.discoveries + 1)
