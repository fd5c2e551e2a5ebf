"""The learner's concurrent, allocation-aware promotion and futility tests.

A prompt's rewarded calls, in the order their rewards reached the stream, are the steps
of :mod:`learner.stats.etest`. The champion's current reign is an *epoch* (it starts
at the last promotion or rollback); each live challenger is tested against the champion
on the steps of this epoch after its own registration only, so both arms are compared on
the same period and every step is weighted by its logged routing probability.

Test numbers for e-LOND (:mod:`learner.policy.fdr`) are an upper bound on the tests the
prompt has started: ``epoch_index * variants_ever + rank``, ``rank`` the challenger's
registration rank. Skipping numbers only shrinks the budgets, so the FDR guarantee
holds; the discoveries are the automatic promotions before this epoch. Everything is
recomputed from the stored steps, so a replay computes the very same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from learner.policy.fdr import log_threshold
from learner.stats.etest import ipw_increment, wealth_path

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
class ChampionChange:
    """A promotion or rollback: from ``sequence`` on, ``champion`` leads."""

    sequence: int
    champion: str
    automatic: bool
    """An automatic promotion (a discovery for e-LOND)."""


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


def concurrent_tests(
    steps: Sequence[RewardStep],
    changes: Sequence[ChampionChange],
    registered: Mapping[str, int],
    champion: str,
    challengers: Sequence[str],
    *,
    alpha: float,
    min_lift: float,
    floor: float = DEFAULT_FLOOR,
) -> dict[str, ConcurrentTest]:
    """Each challenger's test against the champion over the current epoch."""
    epoch_start = changes[-1].sequence if changes else 0
    discoveries = sum(1 for c in changes if c.automatic)
    ever = max(1, len(registered))
    ranks = {v: i for i, v in enumerate(sorted(registered, key=lambda v: (registered[v], v)))}
    bound = 1.0 / floor
    if not steps:
        rewards = np.zeros(0)
    else:
        rewards = np.fromiter((s.reward for s in steps), float, len(steps))
    # The baseline of each step: the prompt's running mean of the rewards before it.
    before = np.concatenate(([0.0], np.cumsum(rewards)[:-1])) if len(rewards) else rewards
    baseline = (0.5 + before) / (1.0 + np.arange(len(rewards)))
    seqs = np.fromiter((s.sequence for s in steps), np.int64, len(steps))
    probs = np.fromiter((s.probability if s.probability else 1.0 for s in steps), float, len(steps))
    known = np.fromiter((s.probability is not None for s in steps), bool, len(steps))
    variants = np.array([s.variant for s in steps], dtype=object)
    out = {}
    for c in challengers:
        start = max(epoch_start, registered.get(c, 0))
        mask = (seqs > start) & known & ((variants == c) | (variants == champion))
        # Steps of other arms are steps too (x = 0): they carry the time forward.
        window = (seqs > start) & known
        served_c = variants == c
        served_h = variants == champion
        # A logged probability below the floor only makes the wealth collapse faster
        # (a factor is clipped at ~0): conservative, never an extra rejection.
        x = ipw_increment(served_c, served_h, rewards, baseline, probs) * mask
        zero = np.zeros(1)
        path, sum_y, _, n, log_w = wealth_path(
            x[window][None, :], window[window][None, :], zero, zero, zero, zero, min_lift, bound
        )
        fpath, *_ = wealth_path(
            -x[window][None, :], window[window][None, :], zero, zero, zero, zero, -min_lift, bound
        )
        n_steps = int(n[0])
        number = len(changes) * ever + ranks.get(c, ever - 1) + 1
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
