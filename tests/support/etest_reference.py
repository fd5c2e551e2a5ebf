"""Reference implementation of the learner's same-period tests, for tests and the bench.

The product steps each test incrementally inside the projection
(:mod:`promptlab.learner.projection.evidence`); this module recomputes the same tests from
a prompt's whole list of rewarded calls with numpy, the way the scenario simulator
(``bench/scenarios.py``) does for thousands of runs at once. ``tests/learner/test_evidence.py``
checks the projection's states against it; ``tests/learner/test_sim_matches_learner.py``
checks the simulator's decisions against the learner's at the very same call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from promptlab.learner.policy.concurrent import ConcurrentTest, ProbationTest
from promptlab.learner.policy.fdr import log_threshold
from promptlab.learner.stats.etest import FloatArray, ipw_increment, step_bounds, wealth_path
from promptlab.prompts.routing import EXPLORATION_FLOOR, PROBATION_HOLDBACK


@dataclass(frozen=True, slots=True)
class RewardStep:
    """One rewarded call: when its reward arrived, which arm served it, the reward, and
    the routing probability logged for it (None for calls routed before it was logged)."""

    sequence: int
    variant: str
    reward: float
    probability: float | None


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
    floor: float = EXPLORATION_FLOOR,
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
    floor: float = EXPLORATION_FLOOR,
    holdback: float = PROBATION_HOLDBACK,
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
