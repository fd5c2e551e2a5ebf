"""The learner's concurrent, allocation-aware promotion and futility tests.

A prompt's rewarded calls, in the order their rewards reached the stream, are the steps
of :mod:`learner.stats.etest`. The champion's current reign is an *epoch* (it starts
at the last promotion or rollback); each live challenger is tested against the champion
on the steps of this epoch after its own registration only, so both arms are compared on
the same period and every step is weighted by its logged routing probability.

After a promotion, :func:`probation_test` compares the previous champion, which keeps a
fixed holdback share of the traffic, with the new one on the same steps: a drift that
moves both arms cancels, so only a real regression rolls the promotion back.

Test numbers for e-LOND (:mod:`learner.policy.fdr`) count the tests the prompt has
started: the projection numbers a challenger's test when it starts (registration, a new
champion, the end of a probation, a reactivation), so the ``j``-th test ever gets
``gamma_j``; the discoveries are the automatic promotions so far.

The learner keeps every running test incrementally (:mod:`learner.projection.evidence`
steps them at each rewarded call) and builds :class:`ConcurrentTest` and
:class:`ProbationTest` from those states (``from_state``): that is the only implementation
in the product. ``tests/support/etest_reference.py`` recomputes the same tests from a
list of rewarded calls, vectorised: the reference the projection is checked against
(``tests/learner/test_evidence.py``) and the simulator's decisions are checked against
(``tests/learner/test_sim_matches_learner.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from promptlab.learner.policy.fdr import log_threshold
from promptlab.learner.stats.etest import (
    TEST_FIELDS,
)


@dataclass(frozen=True, slots=True)
class ConcurrentTest:
    """One challenger against the champion over the current epoch."""

    challenger: str
    champion: str
    number: int
    """e-LOND test number (an upper bound on the prompt's tests so far)."""
    steps: int
    lift: float | None
    """Mean increment: an unbiased estimate of the same-period lift."""
    log_wealth: float
    max_log_wealth: float
    """The largest wealth reached (the test rejects once it crosses)."""
    log_threshold: float
    futility_max_log_wealth: float
    """The same for H0 ``lift >= min_lift`` (crossing it: retire on futility)."""

    @classmethod
    def from_state(
        cls,
        challenger: str,
        champion: str,
        number: int,
        state: Sequence[float],
        *,
        alpha: float,
        min_lift: float,
        discoveries: int,
    ) -> ConcurrentTest:
        """The test as the projection keeps it (:func:`learner.stats.etest.advance`
        layout, the futility twin after the promotion test)."""
        n = int(state[0])
        return cls(
            challenger=challenger,
            champion=champion,
            number=number,
            steps=n,
            lift=state[1] / n + min_lift if n else None,
            log_wealth=state[3],
            max_log_wealth=state[4],
            log_threshold=log_threshold(alpha, number, discoveries),
            futility_max_log_wealth=state[TEST_FIELDS + 4],
        )

    @property
    def promotes(self) -> bool:
        return self.max_log_wealth >= self.log_threshold

    @property
    def e_value(self) -> float:
        return math.exp(min(self.max_log_wealth, 700.0))

    @property
    def p_value(self) -> float:
        """``1 / max E``: an always-valid p-value of ``lift <= min_lift``."""
        return min(1.0, math.exp(-self.max_log_wealth))


@dataclass(frozen=True, slots=True)
class ProbationTest:
    """The previous champion (the holdback) against the new one since the promotion:
    an e-process of ``lift(previous - champion) <= 0``; crossing ``1 / rollback_alpha``
    within the probation's first ``length`` steps rolls the promotion back."""

    champion: str
    previous: str
    length: int
    steps: int
    """Rewarded calls of the prompt since the promotion (counted up to ``length``)."""
    lift: float | None
    """Mean increment: the same-period lift of the new champion over the previous one."""
    max_log_wealth: float
    """The largest wealth reached within the probation."""
    log_threshold: float

    @classmethod
    def from_state(
        cls,
        champion: str,
        previous: str,
        state: Sequence[float],
        *,
        steps: int,
        length: int,
        rollback_alpha: float,
    ) -> ProbationTest:
        """The probation test as the projection keeps it; ``steps`` the rewarded calls
        since the promotion (the projection ends the probation at ``length``)."""
        n = int(state[0])
        return cls(
            champion=champion,
            previous=previous,
            length=length,
            steps=steps,
            lift=-state[1] / n if n else None,
            max_log_wealth=state[4],
            log_threshold=-math.log(rollback_alpha),
        )

    @property
    def running(self) -> bool:
        return self.steps < self.length

    @property
    def rolls_back(self) -> bool:
        return self.max_log_wealth >= self.log_threshold

    @property
    def p_value(self) -> float:
        """``1 / max E``: an always-valid p-value of "the new champion is no worse"."""
        return min(1.0, math.exp(-self.max_log_wealth))
