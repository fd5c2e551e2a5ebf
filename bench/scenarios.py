"""The scenario matrix: the promotion statistics on simulated traffic, thousands of runs
at once.

Every run routes requests as the sidecar does (Thompson shares of live arms rebuilt every
``block`` requests, challengers' total capped at ``exploration_cap``, every live arm at
least ``exploration_floor``, the old champion a fixed ``holdback`` share during
probation), draws rewards, and after **every** reward steps every running test with the
code the learner uses (:func:`learner.stats.etest.wealth_path`,
:func:`learner.stats.etest.ipw_increment`, :class:`learner.policy.fdr.ELond`,
:func:`probation_length`). Runs are the rows of numpy arrays, so a 400-run row of 20,000
requests takes seconds.

Decisions are found at the exact reward that crosses a threshold (its request number is
what the matrix reports) and take effect on routing at the end of that block, as a
routing snapshot reaches the sidecar a little after the decision. All randomness comes
from ``numpy.random.default_rng(seed)``: a row replays exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import special

from bench.scenario_routing import (
    CHALLENGER,
    CHAMPION,
    HOLDBACK,
    INACTIVE,
    RETIRED,
    StickySubjects,
    allocate,
    least_shares,
    thompson_pbest,
)
from promptlab.learner.stats.beta import moment_params
from promptlab.learner.stats.etest import FloatArray, ipw_increment, step_bounds, wealth_path
from promptlab.learner.stats.etest import probation_length as etest_probation_length


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings the statistics use (defaults: the shipped ones)."""

    alpha: float = 0.05
    """FDR level of promotions (e-LOND over every challenger a prompt tests)."""
    min_lift: float = 0.0
    futility_alpha: float = 0.01
    """Error of retiring an arm whose lift is really >= ``min_lift``."""
    rollback_alpha: float = 0.05
    min_detectable: float = 0.05
    """The regression probation is powered (80%) to catch."""
    holdback: float = 0.2
    """Old champion's share of traffic during probation."""
    exploration_cap: float = 0.2
    exploration_floor: float = 0.05
    min_samples: int = 200
    """The learner's guard: each arm has this many rewards before a promotion or a
    retirement."""
    threshold: float = 0.95
    """The learner's guard: P(challenger beats champion) under the posteriors."""


def probation_length(policy: Policy) -> int:
    """The probation's length for these settings (the learner's
    :func:`learner.stats.etest.probation_length`)."""
    return etest_probation_length(policy.min_detectable, policy.holdback, policy.rollback_alpha)


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the matrix."""

    name: str
    start: tuple[float, ...]
    """Each arm's true mean at request 0 (arm 0: the first champion)."""
    end: tuple[float, ...] | None = None
    """Means at the horizon (linear drift in between); None: no drift."""
    arrive: tuple[int, ...] | None = None
    """Request at which each arm goes live (None: all at 0)."""
    horizon: int = 20_000
    rewards: str = "bernoulli"
    """``bernoulli`` or ``beta`` (fractional: Beta(4 mu, 4 (1 - mu)); Beta(2, 2) at 0.5)."""
    delayed: float = 0.0
    """Share of rewards that arrive 1-20 blocks late."""
    force_at: int | None = None
    """An operator promotes arm 1 at this request (probation starts)."""
    step_at: int | None = None
    step: float = 0.0
    """Every arm's mean moves by ``step`` at request ``step_at``."""
    subjects: int = 0
    """> 0: calls come from this many subjects (uniformly) under sticky routing."""
    sequence: int = 0
    """> 0: arm 1 is a slot for this many challengers in turn (an evolution run): each
    lives ``life`` requests unless decided first; ``better_share`` of them are
    ``better_by`` above the champion, the rest equal to it."""
    life: int = 2_000
    better_share: float = 0.1
    better_by: float = 0.05
    policy: Policy = field(default_factory=Policy)


@dataclass(slots=True)
class Outcome:
    """Per-run results of one row (arrays over runs)."""

    promoted: npt.NDArray[np.int64]
    """Request of the first automatic promotion (-1: none)."""
    promoted_arm: npt.NDArray[np.int64]
    rolled_back: npt.NDArray[np.int64]
    """Request of the first rollback (-1: none)."""
    retired: npt.NDArray[np.bool_]
    """(runs, arms): arm retired by futility at some point."""
    regret: FloatArray
    final_champion: npt.NDArray[np.int64]
    promotions: npt.NDArray[np.int64]
    """Automatic promotions per run."""
    false_promotions: npt.NDArray[np.int64]
    """Automatic promotions of an arm not better than the champion by more than
    ``min_lift`` at the time."""
    tested: npt.NDArray[np.int64]
    """Challengers tested per run (sequence rows)."""
    forced: npt.NDArray[np.bool_]
    """Runs where the operator's promotion (``force_at``) took place."""


class _Sim:
    def __init__(self, row: Row, runs: int, seed: int, *, trace: bool = False) -> None:
        self.row, self.runs = row, runs
        self.trace: list[tuple[int, int, float, float]] | None = [] if trace else None
        """Run 0's rewarded calls in the order the statistics see them: ``(request, arm,
        reward, logged probability)`` (to check the learner's code decides alike)."""
        self.rng = np.random.default_rng(seed)
        k = len(row.start)
        self.k = k
        self.pol = row.policy
        self.arrive = np.array(row.arrive or (0,) * k)
        self.status = np.zeros((runs, k), dtype=np.int64)
        self.status[:, 0] = CHAMPION
        self.champion = np.zeros(runs, dtype=np.int64)
        self.post_n = np.zeros((runs, k))
        self.post_s = np.zeros((runs, k))
        self.post_q = np.zeros((runs, k))
        self.base_n = np.ones(runs)
        self.base_s = np.full(runs, 0.5)
        # Per arm: the test of it against the champion (promotion) and its futility twin.
        self.t_start = np.zeros((runs, k), dtype=np.int64)
        self.t_num = np.zeros((runs, k), dtype=np.int64)
        self.tests = [np.zeros((runs, k)) for _ in range(4)]  # sum_y, sum_y2, n, log_w
        # The largest wealth each test (and its futility twin) reached, as the learner
        # keeps it: a crossing counts once the guards allow, even in a later block.
        self.t_max = np.zeros((runs, k))
        self.f_max = np.zeros((runs, k))
        self.futs = [np.zeros((runs, k)) for _ in range(4)]
        self.started = np.zeros(runs, dtype=np.int64)
        self.discoveries = np.zeros(runs, dtype=np.int64)
        # Probation: the previous champion, the test of it against the new one.
        self.prev = np.full(runs, -1)
        self.p_start = np.zeros(runs, dtype=np.int64)
        self.prob = [np.zeros(runs) for _ in range(4)]
        self.prob_len = probation_length(self.pol)
        self.out = Outcome(
            promoted=np.full(runs, -1),
            promoted_arm=np.full(runs, -1),
            rolled_back=np.full(runs, -1),
            retired=np.zeros((runs, k), dtype=bool),
            regret=np.zeros(runs),
            final_champion=np.zeros(runs, dtype=np.int64),
            promotions=np.zeros(runs, dtype=np.int64),
            false_promotions=np.zeros(runs, dtype=np.int64),
            tested=np.zeros(runs, dtype=np.int64),
            forced=np.zeros(runs, dtype=bool),
        )
        self.block = 100
        # The last 21 blocks (rewards arrive at most 20 blocks late), as a ring.
        self.ring = 21 if row.delayed else 1
        width = self.ring * self.block
        self.arm_log = np.zeros((runs, width), dtype=np.int64)
        self.rew_log = np.zeros((runs, width))
        self.p_log = np.ones((runs, width))
        self.arr_log = np.full((runs, width), -1, dtype=np.int64)
        self.mu = np.tile(np.array(row.start, dtype=float), (runs, 1))
        self.drift = (
            np.array(row.end, dtype=float) - np.array(row.start, dtype=float)
            if row.end is not None
            else np.zeros(k)
        )
        self.life_start = np.zeros((runs, k), dtype=np.int64)
        self.subjects = StickySubjects(runs, row.subjects, k) if row.subjects else None

    # ---- traffic

    def means_at(self, t: FloatArray) -> FloatArray:
        """(runs, len(t), arms) true means."""
        frac = (t / self.row.horizon)[None, :, None]
        m = self.mu[:, None, :] + self.drift[None, None, :] * frac
        if self.row.step_at is not None:
            m = m + self.row.step * (t >= self.row.step_at)[None, :, None]
        return np.clip(m, 0.0, 1.0)

    def shares(self) -> FloatArray:
        pol = self.pol
        pbest = thompson_pbest(self.rng, self.status, self.post_n, self.post_s, self.post_q)
        return allocate(
            pbest, self.status, pol.exploration_cap, pol.exploration_floor, pol.holdback
        )

    def floor(self) -> FloatArray:
        return least_shares(self.status, self.pol.exploration_cap, self.pol.exploration_floor)

    def route(self, j: int) -> None:
        b, lo = self.block, j * self.block
        t = np.arange(lo, lo + b)
        s = self.shares()
        cum = np.cumsum(s, axis=1)
        u = self.rng.random((self.runs, b)) * cum[:, -1:]
        # The first arm whose cumulative share exceeds u (never one with share 0).
        arms = np.argmax(u[..., None] < cum[:, None, :], axis=2)
        probs = np.take_along_axis(s, arms, axis=1)
        if self.subjects is not None:
            arms, probs = self.subjects.route(self.rng, s, b)
        m = self.means_at(t.astype(float))
        chosen = np.take_along_axis(m, arms[..., None], axis=2)[..., 0]
        if self.row.rewards == "beta":
            y = self.rng.beta(np.maximum(4 * chosen, 1e-3), np.maximum(4 * (1 - chosen), 1e-3))
        else:
            y = (self.rng.random((self.runs, b)) < chosen).astype(float)
        served = (self.status == CHAMPION) | (self.status == CHALLENGER) | (self.status == HOLDBACK)
        best = np.where(served[:, None, :], m, -np.inf).max(axis=2)
        self.out.regret += (best - chosen).sum(axis=1)
        at = (j % self.ring) * b
        self.arm_log[:, at : at + b] = arms
        self.rew_log[:, at : at + b] = y
        self.p_log[:, at : at + b] = probs
        delay = np.where(
            self.rng.random((self.runs, b)) < self.row.delayed,
            self.rng.integers(1, 21, (self.runs, b)),
            0,
        )
        self.arr_log[:, at : at + b] = j + delay

    # ---- statistics

    def run(self) -> Outcome:
        for a in range(1, self.k):
            if self.arrive[a] == 0:
                self._start_test(np.ones(self.runs, dtype=bool), a, 0)
        for j in range(self.row.horizon // self.block):
            lo = j * self.block
            for a in range(1, self.k):
                if self.arrive[a] == lo and lo > 0:
                    self._start_test(np.ones(self.runs, dtype=bool), a, lo)
            if self.row.force_at is not None and lo == self.row.force_at:
                # An operator promotes arm 1; the learner refuses a retired arm (and
                # there is nothing to do once it leads already).
                lanes = self.status[:, 1] == CHALLENGER
                self.out.forced[:] = lanes
                self._promote(lanes, np.ones(self.runs, dtype=np.int64), lo, auto=False)
            if self.row.sequence:
                self._turnover(lo)
            self.route(j)
            self._observe(j)
        self.out.final_champion = self.champion.copy()
        return self.out

    def _turnover(self, t: int) -> None:
        """Sequence rows: end a challenger's life, start the next one in a free slot."""
        for a in range(self.k):
            old = (self.status[:, a] == CHALLENGER) & (t - self.life_start[:, a] >= self.row.life)
            self.status[old, a] = RETIRED
        free = (self.prev < 0) & (self.out.tested < self.row.sequence)
        for a in range(self.k):
            lanes = free & np.isin(self.status[:, a], (RETIRED, INACTIVE))
            if not lanes.any():
                continue
            champ_mu = self.mu[lanes, self.champion[lanes]]
            better = self.rng.random(int(lanes.sum())) < self.row.better_share
            self.mu[lanes, a] = np.clip(champ_mu + better * self.row.better_by, 0.0, 1.0)
            self.post_n[lanes, a] = 0.0
            self.post_s[lanes, a] = 0.0
            self.post_q[lanes, a] = 0.0
            self.status[lanes, a] = INACTIVE
            self.life_start[lanes, a] = t
            self.out.tested[lanes] += 1
            self._start_test(lanes, a, t)
            free = free & ~lanes

    def _start_test(self, lanes: npt.NDArray[np.bool_], a: int, t: int) -> None:
        self.status[lanes, a] = np.where(
            self.status[lanes, a] == INACTIVE, CHALLENGER, self.status[lanes, a]
        )
        self.started[lanes] += 1
        self.t_num[lanes, a] = self.started[lanes]
        self.t_start[lanes, a] = t
        for arr in (*self.tests, *self.futs, self.t_max, self.f_max):
            arr[lanes, a] = 0.0

    def _observe(self, j: int) -> None:
        hi = (j + 1) * self.block
        first = max(0, j - self.ring + 1)
        cols = np.concatenate(
            [
                np.arange((q % self.ring) * self.block, (q % self.ring + 1) * self.block)
                for q in range(first, j + 1)
            ]
        )
        arms = self.arm_log[:, cols]
        y = self.rew_log[:, cols]
        p = self.p_log[:, cols]
        t = np.arange(first * self.block, hi)[None, :]
        mask = self.arr_log[:, cols] == j
        mf = mask.astype(float)
        # Baseline: the prompt's running mean of earlier rewards.
        cs = np.cumsum(y * mf, axis=1) - y * mf
        cn = np.cumsum(mf, axis=1) - mf
        base = (self.base_s[:, None] + cs) / (self.base_n[:, None] + cn)
        self.base_s += (y * mf).sum(axis=1)
        self.base_n += mf.sum(axis=1)
        if self.trace is not None:
            m0 = mask[0]
            self.trace.extend(
                zip(
                    t[0, m0].tolist(),
                    arms[0, m0].tolist(),
                    y[0, m0].tolist(),
                    p[0, m0].tolist(),
                    strict=True,
                )
            )
        for a in range(self.k):
            hit = mask & (arms == a)
            self.post_n[:, a] += hit.sum(axis=1)
            self.post_s[:, a] += (y * hit).sum(axis=1)
            self.post_q[:, a] += (y * y * hit).sum(axis=1)
        pol = self.pol
        # The floor in force (known before the block) bounds every increment; holdback
        # shares are above it.
        bound = step_bounds(base, self.floor()[:, None])
        first_cross = np.full(self.runs, np.iinfo(np.int64).max)
        winner = np.full(self.runs, -1)
        champ = self.champion[:, None]
        lo = int(t[0, -1]) + 1 - self.block
        # The learner's guards, with the counts at the end of the block: both arms have
        # min_samples rewards, and P(challenger beats champion) >= threshold.
        pa, pb = moment_params(self.post_n, self.post_s, self.post_q)
        p_mean = pa / (pa + pb)
        p_var = pa * pb / ((pa + pb) ** 2 * (pa + pb + 1.0))
        lanes = np.arange(self.runs)
        h_mean, h_var = p_mean[lanes, self.champion], p_var[lanes, self.champion]
        h_n = self.post_n[lanes, self.champion]
        for a in range(self.k):
            testing = self.status[:, a] == CHALLENGER
            if not testing.any():
                continue
            m = mask & testing[:, None] & (t >= self.t_start[:, a : a + 1])
            x = ipw_increment(arms == a, arms == champ, y, base, p) * m
            sy, sy2, n, lw = (arr[:, a] for arr in self.tests)
            path, *after = wealth_path(x, m, sy, sy2, n, lw, pol.min_lift, bound)
            for arr, v in zip(self.tests, after, strict=True):
                arr[:, a] = v
            j_num = np.maximum(self.t_num[:, a], 1).astype(float)
            thr = -np.log(pol.alpha / (j_num * (j_num + 1)) * (self.discoveries + 1))
            before = self.t_max[:, a].copy()
            self.t_max[:, a] = np.maximum(before, np.where(m, path, -np.inf).max(axis=1))
            cross = (path >= thr[:, None]) & m
            z = (p_mean[:, a] - h_mean) / np.sqrt(p_var[:, a] + h_var)
            guards = (
                (self.post_n[:, a] >= pol.min_samples)
                & (h_n >= pol.min_samples)
                & (0.5 * special.erfc(-z / math.sqrt(2.0)) >= pol.threshold)
            )
            crossed = (self.t_max[:, a] >= thr) & testing & guards
            # Promoted at the crossing when it falls in this block, else (an earlier
            # crossing the guards held back) at the start of the block.
            at = np.where(before >= thr, lo, t[0, np.argmax(cross, axis=1)])
            at = np.where(crossed, at, np.iinfo(np.int64).max)
            better = at < first_cross
            first_cross = np.where(better, at, first_cross)
            winner = np.where(better, a, winner)
            # Futility: H0 lift >= min_lift, rejected -> retire (after min_samples).
            fsy, fsy2, fn, flw = (arr[:, a] for arr in self.futs)
            fpath, *fafter = wealth_path(-x, m, fsy, fsy2, fn, flw, -pol.min_lift, bound)
            for arr, v in zip(self.futs, fafter, strict=True):
                arr[:, a] = v
            self.f_max[:, a] = np.maximum(self.f_max[:, a], np.where(m, fpath, -np.inf).max(axis=1))
            fut = (
                (self.f_max[:, a] >= -math.log(pol.futility_alpha))
                & (self.post_n[:, a] >= pol.min_samples)
                & testing
                & ~crossed
            )
            if fut.any():
                self.status[fut, a] = RETIRED
                self.out.retired[fut, a] = True
        self._probation(mask, arms, y, base, p, t, bound)
        on_probation = self.prev >= 0
        promote = (winner >= 0) & ~on_probation
        if promote.any():
            self.discoveries[promote] += 1
            once = promote & (self.out.promoted < 0)
            self.out.promoted[once] = first_cross[once]
            self.out.promoted_arm[once] = winner[once]
            idx = np.nonzero(promote)[0]
            lift = self.mu[idx, winner[idx]] - self.mu[idx, self.champion[idx]]
            self.out.promotions[idx] += 1
            self.out.false_promotions[idx] += lift <= self.pol.min_lift + 1e-12
            self._promote(promote, winner, hi, auto=True)

    def _promote(
        self, lanes: npt.NDArray[np.bool_], new: npt.NDArray[np.int64], t: int, auto: bool
    ) -> None:
        idx = np.nonzero(lanes)[0]
        old = self.champion[idx]
        self.status[idx, old] = HOLDBACK
        self.status[idx, new[idx]] = CHAMPION
        self.champion[idx] = new[idx]
        self.prev[idx] = old
        self.p_start[idx] = t
        for arr in self.prob:
            arr[idx] = 0.0
        # Remaining challengers are now tested against the new champion: new tests.
        for a in range(self.k):
            again = lanes & (self.status[:, a] == CHALLENGER)
            if again.any():
                self._start_test(again, a, t)

    def _probation(
        self,
        mask: npt.NDArray[np.bool_],
        arms: npt.NDArray[np.int64],
        y: FloatArray,
        base: FloatArray,
        p: FloatArray,
        t: npt.NDArray[np.int64],
        bound: FloatArray,
    ) -> None:
        lanes = self.prev >= 0
        if not lanes.any():
            return
        prev = self.prev[:, None]
        champ = self.champion[:, None]
        m = mask & lanes[:, None] & (t >= self.p_start[:, None])
        # Lift of the old champion over the new one: H0 "<= 0", rejected -> roll back.
        x = ipw_increment(arms == prev, arms == champ, y, base, p) * m
        sy, sy2, n, lw = self.prob
        before = n.copy()
        path, *after = wealth_path(x, m, sy, sy2, n, lw, 0.0, bound)
        self.prob = list(after)
        # Only steps within the probation length count.
        steps = before[:, None] + np.cumsum(m, axis=1)
        within = m & (steps <= self.prob_len)
        back = ((path >= -math.log(self.pol.rollback_alpha)) & within).any(axis=1) & lanes
        done = lanes & ~back & (self.prob[2] >= self.prob_len)
        if back.any():
            first = back & (self.out.rolled_back < 0)
            at = t[0, np.argmax((path >= -math.log(self.pol.rollback_alpha)) & within, axis=1)]
            self.out.rolled_back[first] = at[first]
            idx = np.nonzero(back)[0]
            demoted = self.champion[idx]
            self.status[idx, demoted] = RETIRED
            self.status[idx, self.prev[idx]] = CHAMPION
            self.champion[idx] = self.prev[idx]
            self.prev[idx] = -1
            hi = int(t[0, -1]) + 1
            for a in range(self.k):
                again = back & (self.status[:, a] == CHALLENGER)
                if again.any():
                    self._start_test(again, a, hi)
        if done.any():
            # Probation passed: the old champion becomes an ordinary challenger again.
            idx = np.nonzero(done)[0]
            old = self.prev[idx]
            self.prev[idx] = -1
            hi = int(t[0, -1]) + 1
            for a in range(self.k):
                lanes_a = np.zeros(self.runs, dtype=bool)
                lanes_a[idx[old == a]] = True
                if lanes_a.any() and self.row.sequence:
                    self.status[lanes_a, a] = RETIRED  # the slot goes to the next challenger
                elif lanes_a.any():
                    self.status[lanes_a, a] = CHALLENGER
                    self._start_test(lanes_a, a, hi)


def simulate(row: Row, runs: int, seed: int = 0) -> Outcome:
    """Run ``row`` ``runs`` times (rows of arrays; same seed, same outcome)."""
    return _Sim(row, runs, seed).run()
