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
:class:`ProbationTest` from those states (``from_state``). :func:`concurrent_tests` and
:func:`probation_test` compute the same tests from a list of rewarded calls: the
reference the projection is checked against (``tests/learner/test_evidence.py``) and
what the simulator's decisions are checked against (``tests/learner/test_sim_matches_learner.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from promptlab.learner.policy.fdr import log_threshold
from promptlab.learner.stats.etest import (
    TEST_FIELDS,
    FloatArray,
    ipw_increment,
    step_bounds,
    wealth_path,
)

DEFAULT_FLOOR = 0.05


@dataclass(frozen=True, slots=True)
class RewardStep:
    """One rewarded call: when its reward arrived, which arm served it, the reward, and
    the routing probability logged for it (None for calls routed before it was logged)."""

    sequence: int
    variant: str
    reward: float
    probability: float | None


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


class RewardLog:
    """A prompt's rewarded calls as arrays, with each step's baseline (the prompt's
    running mean of the rewards before it, from a prior of one pseudo-reward of 0.5)."""

    def __init__(self, steps: Sequence[RewardStep]) -> None:
        n = len(steps)
        self.rewards = np.fromiter((s.reward for s in steps), float, n)
        before = np.concatenate(([0.0], np.cumsum(self.rewards)[:-1])) if n else self.rewards
        self.baseline = (0.5 + before) / (1.0 + np.arange(n))
        self.seqs = np.fromiter((s.sequence for s in steps), np.int64, n)
        self.probs = np.fromiter((s.probability if s.probability else 1.0 for s in steps), float, n)
        self.known = np.fromiter((s.probability is not None for s in steps), bool, n)
        self.variants = np.array([s.variant for s in steps], dtype=object)

    def increments(self, c: str, h: str) -> FloatArray:
        """Each step's IPW increment of ``c`` over ``h`` (0 for other arms)."""
        return ipw_increment(
            self.variants == c, self.variants == h, self.rewards, self.baseline, self.probs
        )


def concurrent_tests(
    steps: Sequence[RewardStep] | RewardLog,
    numbers: Mapping[str, tuple[int, int]],
    champion: str,
    *,
    alpha: float,
    min_lift: float,
    floor: float = DEFAULT_FLOOR,
    discoveries: int = 0,
) -> dict[str, ConcurrentTest]:
    """Each challenger's test against the champion, recomputed from the rewarded calls:
    ``numbers`` gives every challenger's test as the projection started it, ``(e-LOND
    number, the sequence its steps start after)``; ``discoveries`` the automatic
    promotions so far."""
    log = steps if isinstance(steps, RewardLog) else RewardLog(steps)
    bounds = step_bounds(log.baseline, floor)
    out = {}
    for c, (number, start) in numbers.items():
        # Steps of other arms are steps too (x = 0): they carry the time forward.
        window = (log.seqs > start) & log.known
        # A logged probability below the floor only makes the wealth collapse faster
        # (a factor is clipped at ~0): conservative, never an extra rejection.
        x = log.increments(c, champion)[window]
        bound = bounds[window][None, :]
        ones = np.ones((1, len(x)), dtype=bool)
        zero = np.zeros(1)
        path, sum_y, _, n, log_w = wealth_path(
            x[None, :], ones, zero, zero, zero, zero, min_lift, bound
        )
        fpath, *_ = wealth_path(-x[None, :], ones, zero, zero, zero, zero, -min_lift, bound)
        n_steps = int(n[0])
        out[c] = ConcurrentTest(
            challenger=c,
            champion=champion,
            number=number,
            steps=n_steps,
            lift=(float(sum_y[0]) / n_steps + min_lift) if n_steps else None,
            log_wealth=float(log_w[0]),
            max_log_wealth=float(path.max()) if n_steps else 0.0,
            log_threshold=log_threshold(alpha, number, discoveries),
            futility_max_log_wealth=float(fpath.max()) if n_steps else 0.0,
        )
    return out


def probation_test(
    steps: Sequence[RewardStep] | RewardLog,
    promoted_at: int,
    champion: str,
    previous: str,
    *,
    length: int,
    rollback_alpha: float,
    floor: float = DEFAULT_FLOOR,
    holdback: float = 0.2,
) -> ProbationTest:
    """The probation of the promotion at stream sequence ``promoted_at``: the previous
    champion (kept on ``holdback`` of the traffic) against the new one, on the rewarded
    calls after the promotion, the first ``length`` of them."""
    log = steps if isinstance(steps, RewardLog) else RewardLog(steps)
    # Every rewarded call since the promotion is a step (the projection counts the same
    # ones to end the probation); one without a logged probability adds nothing.
    window = log.seqs > promoted_at
    x = (log.increments(previous, champion) * log.known)[window][:length]
    least = min(floor, holdback) if holdback > 0 else floor
    bound = step_bounds(log.baseline, least)[window][:length][None, :]
    zero = np.zeros(1)
    path, sum_y, _, n, _ = wealth_path(
        x[None, :], np.ones((1, len(x)), dtype=bool), zero, zero, zero, zero, 0.0, bound
    )
    n_steps = int(n[0])
    return ProbationTest(
        champion=champion,
        previous=previous,
        length=length,
        steps=n_steps,
        lift=-float(sum_y[0]) / n_steps if n_steps else None,
        max_log_wealth=float(path.max()) if n_steps else 0.0,
        log_threshold=-math.log(rollback_alpha),
    )
