"""How the scenario simulator (:mod:`bench.scenarios`) routes requests: the
sidecar's rules (:mod:`sidecar.router`) over arrays of runs.

Each run is a row; each arm a column with a status. Thompson shares are P(best) under
the learner's posteriors (:func:`learner.stats.beta.moment_params`), estimated with 256
normal draws per arm; :func:`allocate` caps the challengers at ``exploration_cap``,
raises every live arm to its floor (:func:`least_shares`) and gives a holdback arm its
fixed share, as :func:`sidecar.router.floor_shares` and ``build_table`` do
(``tests/learner/test_scenarios.py`` checks them against the router's functions).
:class:`StickySubjects` routes calls that name a subject as
:mod:`sidecar.assignments` does.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from promptlab.learner.stats.beta import moment_params
from promptlab.learner.stats.etest import FloatArray

INACTIVE, CHALLENGER, CHAMPION, RETIRED, HOLDBACK = 0, 1, 2, 3, 4
"""An arm's status in one run."""


def thompson_pbest(
    rng: np.random.Generator,
    status: npt.NDArray[np.int64],
    post_n: FloatArray,
    post_s: FloatArray,
    post_q: FloatArray,
) -> FloatArray:
    """(runs, arms) P(best) of the live arms (champion and challengers) under the
    learner's posteriors: conjugate for 0/1 rewards, matched to the observed spread for
    fractional ones."""
    runs, k = status.shape
    live = (status == CHAMPION) | (status == CHALLENGER)
    a, b = moment_params(post_n, post_s, post_q)
    mean = a / (a + b)
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    draws = mean[..., None] + sd[..., None] * rng.standard_normal((runs, k, 256))
    draws = np.where(live[..., None], draws, -np.inf)
    best = np.argmax(draws, axis=1)
    return np.stack([(best == i).mean(axis=1) for i in range(k)], axis=1)


def least_shares(status: npt.NDArray[np.int64], cap: float, floor: float) -> FloatArray:
    """Each run's least share of a live arm: ``floor``, lowered so the challengers'
    floors fit in ``cap`` (``min(floor, cap / (2 k))``, ``k`` challengers)."""
    n_chal = (status == CHALLENGER).sum(axis=1)
    return np.minimum(floor, cap / (2 * np.maximum(n_chal, 1)))


def allocate(
    pbest: FloatArray, status: npt.NDArray[np.int64], cap: float, floor: float, holdback: float
) -> FloatArray:
    """Shares from P(best): cap, floor and holdback as the sidecar applies them."""
    chal = status == CHALLENGER
    champ = status == CHAMPION
    total = (pbest * chal).sum(axis=1, keepdims=True)
    scale = np.where(total > cap, cap / np.maximum(total, 1e-12), 1.0)
    s = pbest * chal * scale
    s = s + champ * (1.0 - s.sum(axis=1, keepdims=True))
    # The exploration floor, as sidecar.router.floor_shares applies it.
    f = least_shares(status, cap, floor)[:, None]
    n_chal = chal.sum(axis=1, keepdims=True)
    raised = np.where(chal, np.maximum(s, f), 0.0)
    limit = np.maximum(cap, (s * chal).sum(axis=1, keepdims=True))
    total = raised.sum(axis=1, keepdims=True)
    above = ((raised - f) * chal).sum(axis=1, keepdims=True)
    scale = np.where(
        (total > limit) & (above > 0), (limit - n_chal * f) / np.maximum(above, 1e-12), 1.0
    )
    raised = np.where(chal, f + (raised - f) * scale, 0.0)
    s = raised + champ * np.maximum(0.0, 1.0 - raised.sum(axis=1, keepdims=True))
    hold = status == HOLDBACK
    has_hold = hold.any(axis=1, keepdims=True)
    return np.where(has_hold, s * (1.0 - holdback), s) + hold * holdback


class StickySubjects:
    """Subjects under sticky routing, as :mod:`sidecar.assignments` routes them.

    A subject is assigned with the table's shares ``p0`` and a point ``u`` of [0, 1)
    (the router hashes it). It keeps its arm ``a`` while ``u * p0[a] < p[a]`` under the
    current shares ``p``; once that fails it moves to an arm whose share grew since
    ``p0`` (in proportion to the growth) and is assigned anew. Of the subjects assigned
    under ``p0`` a share ``min(1, p[a] / p0[a])`` stay and the movers fill exactly the
    growth, so a subject is on arm ``a`` with probability ``p[a]``: the probability
    logged for its call. As few subjects move as the shift demands.
    """

    def __init__(self, runs: int, subjects: int, arms: int) -> None:
        self.subjects = subjects
        self.arm = np.full((runs, subjects), -1, dtype=np.int64)
        self.shares = np.zeros((runs, subjects, arms))
        self.point = np.zeros((runs, subjects))

    def route(
        self, rng: np.random.Generator, shares: FloatArray, calls: int
    ) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """One block of ``calls`` per run from uniformly drawn subjects under ``shares``
        (one table per block): each call's arm and logged probability."""
        runs, k = shares.shape
        who = rng.integers(0, self.subjects, (runs, calls))
        lane = np.arange(runs)[:, None].repeat(calls, 1)
        # One check per subject per table (block): at its first call in the block.
        flat = (lane * self.subjects + who).ravel()
        uniq, inverse = np.unique(flat, return_inverse=True)
        r_u, s_u = uniq // self.subjects, uniq % self.subjects
        kept = self.arm[r_u, s_u]
        now = shares[r_u]
        base = self.shares[r_u, s_u]
        has = kept >= 0
        idx = np.maximum(kept, 0)[:, None]
        p_now = np.take_along_axis(now, idx, axis=1)[:, 0]
        p_base = np.take_along_axis(base, idx, axis=1)[:, 0]
        stay = has & (self.point[r_u, s_u] * p_base < p_now)
        grew = np.maximum(now - base, 0.0)
        grew = np.where(has[:, None] & (grew.sum(axis=1, keepdims=True) > 0), grew, now)
        cum = np.cumsum(grew, axis=1)
        u = rng.random(len(uniq))[:, None] * cum[:, -1:]
        moved = np.minimum(np.argmax(u < cum, axis=1), k - 1)
        new_arm = np.where(stay, kept, moved)
        go = ~stay
        self.arm[r_u[go], s_u[go]] = new_arm[go]
        self.shares[r_u[go], s_u[go]] = now[go]
        self.point[r_u[go], s_u[go]] = rng.random(int(go.sum()))
        arms = new_arm[inverse].reshape(runs, calls)
        return arms, np.take_along_axis(shares, arms, axis=1)
