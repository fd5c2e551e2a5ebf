"""Statistical validation: the real policy on simulated Bernoulli arms.

Each run routes ``horizon`` requests between variants whose rewards are Bernoulli with
known means, gives every request its reward at once, and checks the policy after
**every** rewarded event, acting on its decisions (promote, probation, rollback,
retire) as the learner and the sidecar would. :func:`learner.policy.rules.decide` is the
function that decides; nothing here re-implements a rule.

Speed without cutting corners
-----------------------------
Calling ``decide`` 20,000 times per run would cost minutes per thousand runs, and
almost every call returns None. So each block of requests is first *screened* with
vectorised numpy: a promotion needs the mSPRT to reject, a rollback needs it to reject
in the harmful direction, and a retirement needs :func:`learner.policy.guards.retire_screen`
to pass; those are necessary conditions of any decision, evaluated with the same
formulas and a little extra slack. ``decide`` runs at every event that passes the screen,
in order, so the outcome is the same as calling it after every event
(``tests/learner/test_simulate.py`` checks this against a literal every-event loop).

Routing (the sidecar's rule, ``sidecar/router.py``)
---------------------------------------------------
``allocator="sidecar"`` (default) mirrors the router: a routing table is rebuilt from
the posteriors every ``refresh_every`` requests (the learner publishes a snapshot at
most every 250 ms) and after every decision; each arm's share is its Monte Carlo
P(best) (Thompson sampling as probability matching), then the challengers' total is
scaled down to ``exploration_cap``. The champion therefore gets
``max(P(champion best), 1 - cap) >= 1 - cap``; with two arms a challenger gets
``min(P(challenger best), cap)``.

``allocator="per_request"`` is the rule in the learner issue's brief: per request,
with probability ``1 - cap`` the champion, otherwise one Thompson draw over all
active arms (champion share ``1 - cap + cap * P(champion best) >= 1 - cap``; a
challenger gets ``cap * P(best)``, half the sidecar's exploration at parity).

Randomness: run ``r`` of a scenario uses ``default_rng([seed, r])`` for traffic and
rewards, and ``decide`` gets ``default_rng([seed, r, t])`` at request ``t`` (the
learner seeds from the stream sequence the same way), so every run replays exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import special, stats

from events.snapshots import VariantStatus
from learner.policy.guards import LARGE_SAMPLE, SCREEN_MARGIN_Z, SCREEN_MARGIN_Z_LARGE
from learner.policy.rules import Decision, Probation, PromptState, decide
from learner.stats.beta import ArmSummary
from learner.stats.sequential import DEFAULT_TAU2, MIN_SEQUENTIAL_N, MIN_VARIANCE, log_lambda
from prompts.config import PromotionConfig

Allocator = Literal["sidecar", "per_request"]
Rule = Literal["policy", "naive"]

_SLACK_LOG = 1e-6
"""Screens accept log-ratios this far *below* the boundary, against float differences."""
_SLACK_Z = 0.05
"""Extra margin of the vectorised retirement screen over :func:`learner.policy.guards.screen_margin`."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated experiment; arm 0 is the initial champion."""

    means: tuple[float, ...]
    """True Bernoulli reward of each arm."""
    horizon: int = 20_000
    """Requests per run (every request is rewarded)."""
    exploration_cap: float = 0.2
    allocator: Allocator = "sidecar"
    refresh_every: int = 100
    """Requests between routing-table rebuilds (sidecar allocator)."""
    table_draws: int = 2048
    """Monte Carlo draws per table (the sidecar uses 8,192; fewer only adds noise to the
    shares, standard error <= 1.1 points, and keeps the simulation fast)."""
    rule: Rule = "policy"
    """``policy``: :func:`learner.policy.rules.decide`. ``naive``: promote as soon as a two-sample
    Welch t-test gives p < alpha in the challenger's favour (both arms >= min_samples),
    at any check; no probation, no retirement."""
    promotion: PromotionConfig = field(default_factory=PromotionConfig)
    tau2: float = DEFAULT_TAU2
    decide_draws: int = 10_000

    def __post_init__(self) -> None:
        if len(self.means) < 2 or not all(0.0 <= m <= 1.0 for m in self.means):
            raise ValueError("need >= 2 arms with means in [0, 1]")
        if self.horizon < 1 or self.refresh_every < 1 or not 0.0 <= self.exploration_cap <= 1.0:
            raise ValueError("horizon and refresh_every must be >= 1 and exploration_cap in [0, 1]")


@dataclass(frozen=True, slots=True)
class RunResult:
    """What happened in one run."""

    decisions: tuple[tuple[int, str, int], ...]
    """``(request, kind, arm)`` in order; ``request`` is 1-based."""
    regret: float
    """``sum_t (max_i mu_i - mu_{arm_t})`` over the horizon (expected, not realised, reward)."""
    challenger_share: float
    """Share of requests that went to an arm other than the initial champion."""
    final_champion: int

    def first(self, kind: str) -> tuple[int, int] | None:
        """``(request, arm)`` of the first decision of ``kind``, or None."""
        for t, k, a in self.decisions:
            if k == kind:
                return t, a
        return None


# --------------------------------------------------------------------------- one run


class _Run:
    """Mutable bookkeeping of one run; the decisions themselves come from ``decide``."""

    def __init__(self, sc: Scenario, seed: int, run: int) -> None:
        self.sc, self.seed, self.run = sc, seed, run
        self.gen = np.random.default_rng([seed, run])
        k = len(sc.means)
        self.k = k
        self.mu = np.asarray(sc.means, dtype=float)
        # Reward stacks: the i-th pull of arm a gets reward stack[a][i] (pre-drawn, so a
        # discarded routing draw never consumes a reward). cs[a][n] = sum of the first n.
        stack = self.gen.random((k, sc.horizon)) < self.mu[:, None]
        self.cs = np.concatenate([np.zeros((k, 1)), stack.cumsum(axis=1)], axis=1)
        self.n = np.zeros(k, dtype=np.int64)
        self.champion = 0
        challenger: VariantStatus = "challenger"
        self.status: list[VariantStatus] = ["champion", *([challenger] * (k - 1))]
        self.probation: tuple[int, int, int, float] | None = None
        """(previous champion, previous's n at promotion, new champion's n at promotion, its sum)."""
        self.decisions: list[tuple[int, str, int]] = []
        self.regret = 0.0
        self.off_champion = 0

    # ---- routing

    def active(self) -> list[int]:
        return [self.champion] + [i for i in range(self.k) if self.status[i] == "challenger"]

    def _posteriors(self, arms: Sequence[int], n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = np.array([self.cs[a, n[a]] for a in arms])
        nn = n[list(arms)].astype(float)
        return 1.0 + s, 1.0 + nn - s

    def shares(self) -> np.ndarray:
        """The sidecar's table: P(best) by Monte Carlo, challengers capped at ``cap``."""
        active = self.active()
        out = np.zeros(self.k)
        if len(active) == 1:
            out[self.champion] = 1.0
            return out
        a, b = self._posteriors(active, self.n)
        draws = self.gen.beta(a[:, None], b[:, None], size=(len(active), self.sc.table_draws))
        p = np.bincount(draws.argmax(axis=0), minlength=len(active)) / self.sc.table_draws
        cap = self.sc.exploration_cap
        challengers = 1.0 - p[0]
        if challengers > cap:
            p = p * (cap / challengers)
            p[0] = 1.0 - cap
        out[active] = p
        return out

    def route_block(self, size: int) -> np.ndarray:
        """Arms of the next ``size`` requests under the current routing."""
        if self.sc.allocator == "sidecar":
            cum = np.cumsum(self.shares())
            cum[-1] = 1.0
            return np.minimum(np.searchsorted(cum, self.gen.random(size), side="right"), self.k - 1)
        # per_request: the Thompson draw needs the posterior after every reward.
        active = self.active()
        n = self.n.copy()
        arms = np.empty(size, dtype=np.int64)
        cap = self.sc.exploration_cap
        explore = self.gen.random(size) < cap
        for j in range(size):
            if explore[j] and len(active) > 1:
                a, b = self._posteriors(active, n)
                arm = active[int(np.argmax(self.gen.beta(a, b)))]
            else:
                arm = self.champion
            arms[j] = arm
            n[arm] += 1
        return arms

    # ---- decisions

    def state_at(self, n: np.ndarray) -> PromptState:
        """The policy's view after the requests that brought the counts to ``n``."""
        summaries = []
        for a in range(self.k):
            s = float(self.cs[a, n[a]])
            summaries.append(
                ArmSummary(
                    f"v{a}", n=int(n[a]), reward_sum=s, reward_sq_sum=s, executions=int(n[a])
                )
            )
        statuses = {f"v{a}": self.status[a] for a in range(self.k)}
        probation = None
        if self.probation is not None:
            prev, prev_n, start_n, start_s = self.probation
            since_n = int(n[self.champion]) - start_n
            if since_n <= self.sc.promotion.probation_samples:
                ps = float(self.cs[prev, prev_n])
                since_s = float(self.cs[self.champion, n[self.champion]]) - start_s
                probation = Probation(
                    champion=f"v{self.champion}",
                    previous=f"v{prev}",
                    baseline=ArmSummary(
                        f"v{prev}", n=prev_n, reward_sum=ps, reward_sq_sum=ps, executions=prev_n
                    ),
                    since=ArmSummary(
                        f"v{self.champion}",
                        n=since_n,
                        reward_sum=since_s,
                        reward_sq_sum=since_s,
                        executions=since_n,
                    ),
                )
        if probation is None:
            statuses[f"v{self.champion}"] = "champion"
        return PromptState(
            champion=f"v{self.champion}",
            arms={x.variant: x for x in summaries},
            statuses=statuses,
            probation=probation,
        )

    def apply(self, t: int, kind: str, arm: int, n: np.ndarray) -> None:
        self.decisions.append((t, kind, arm))
        if kind == "promote":
            prev = self.champion
            self.status[prev] = "challenger"
            self.status[arm] = "probation"
            self.champion = arm
            if self.sc.rule == "policy" and self.sc.promotion.probation_samples > 0:
                self.probation = (prev, int(n[prev]), int(n[arm]), float(self.cs[arm, n[arm]]))
            else:
                self.status[arm] = "champion"
                self.probation = None
        elif kind == "rollback":
            assert self.probation is not None
            prev = self.probation[0]
            self.status[self.champion] = "retired"
            self.status[prev] = "champion"
            self.champion = prev
            self.probation = None
        else:  # retire
            self.status[arm] = "retired"

    def end_probation_if_due(self) -> None:
        if (
            self.probation is not None
            and self.n[self.champion] - self.probation[2] > self.sc.promotion.probation_samples
        ):
            self.status[self.champion] = "champion"
            self.probation = None


def _block_counts(run: _Run, arms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts and reward sums of every arm after each request of the block: (k, B)."""
    onehot = arms[None, :] == np.arange(run.k)[:, None]
    counts = run.n[:, None] + onehot.cumsum(axis=1)
    sums = np.take_along_axis(run.cs, counts, axis=1)
    return counts, sums


def _moments(counts: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means and floored unbiased variances of Bernoulli sums (as ArmSummary computes them)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        var = np.where(
            counts > 1,
            (sums - sums * sums / np.maximum(counts, 1)) / np.maximum(counts - 1, 1),
            0.0,
        )
    return mean, np.maximum(var, MIN_VARIANCE)


def _policy_candidates(run: _Run, counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Events of the block where ``decide`` might return a decision (a superset)."""
    sc, cfg = run.sc, run.sc.promotion
    h = run.champion
    mean, var = _moments(counts, sums)
    challengers = [i for i in range(run.k) if run.status[i] == "challenger"]
    any_cand = np.zeros(counts.shape[1], dtype=bool)
    on_probation = np.zeros(counts.shape[1], dtype=bool)
    if run.probation is not None:
        prev, prev_n, start_n, start_s = run.probation
        since_n = counts[h] - start_n
        on_probation = since_n <= cfg.probation_samples
        since_s = sums[h] - start_s
        m_new, v_new = _moments(since_n, since_s)
        m_base, v_base = _moments(np.array([prev_n]), np.array([run.cs[prev, prev_n]]))
        s2 = v_new / np.maximum(since_n, 1) + v_base[0] / prev_n
        ll = np.asarray(log_lambda(m_new - m_base[0], s2, sc.tau2))
        regress = (
            (since_n >= MIN_SEQUENTIAL_N)
            & (m_new < m_base[0])
            & (ll >= math.log(1.0 / cfg.rollback_alpha) - _SLACK_LOG)
        )
        any_cand |= on_probation & regress
    k_chal = max(1, len(challengers))
    protected = run.probation[0] if run.probation is not None else -1
    active = [h, *challengers]
    for c in challengers:
        lift = mean[c] - mean[h]
        enough = (counts[c] >= cfg.min_samples) & (counts[h] >= cfg.min_samples)
        s2 = var[c] / counts[c].clip(1) + var[h] / counts[h].clip(1)
        ll = np.asarray(log_lambda(lift, s2, sc.tau2))
        test = (
            (counts[c] >= MIN_SEQUENTIAL_N)
            & (counts[h] >= MIN_SEQUENTIAL_N)
            & (lift > 0)
            & (ll >= math.log(k_chal / cfg.alpha) - _SLACK_LOG)
        )
        any_cand |= ~on_probation & enough & (lift >= cfg.min_lift - 1e-12) & test
        # Retirement screen, as retire_screen() but vectorised and a little looser.
        ac, bc = 1.0 + sums[c], 1.0 + counts[c] - sums[c]
        lower = np.ones(counts.shape[1])
        for j in active:
            if j == c:
                continue
            aj, bj = 1.0 + sums[j], 1.0 + counts[j] - sums[j]
            mc, mj = ac / (ac + bc), aj / (aj + bj)
            vc = ac * bc / ((ac + bc) ** 2 * (ac + bc + 1.0))
            vj = aj * bj / ((aj + bj) ** 2 * (aj + bj + 1.0))
            z = (mc - mj) / np.sqrt(vc + vj)
            margin = np.where(
                np.minimum(counts[c], counts[j]) >= LARGE_SAMPLE,
                SCREEN_MARGIN_Z_LARGE,
                SCREEN_MARGIN_Z,
            )
            lower -= 1.0 - special.ndtr(z - margin - _SLACK_Z)
        retire = (counts[c] >= cfg.min_samples) & (lower < cfg.retire_below)
        if c == protected:
            retire &= ~on_probation
        any_cand |= retire
    return any_cand


def _naive_candidates(
    run: _Run, counts: np.ndarray, sums: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Events where the naive repeated t-test promotes, and which challenger."""
    cfg = run.sc.promotion
    h = run.champion
    mean, var = _moments(counts, sums)
    best = np.full(counts.shape[1], -1)
    best_p = np.ones(counts.shape[1])
    for c in (i for i in range(run.k) if run.status[i] == "challenger"):
        se2_c, se2_h = var[c] / counts[c].clip(1), var[h] / counts[h].clip(1)
        t = (mean[c] - mean[h]) / np.sqrt(se2_c + se2_h)
        df = (se2_c + se2_h) ** 2 / (
            se2_c**2 / (counts[c] - 1).clip(1) + se2_h**2 / (counts[h] - 1).clip(1)
        )
        p = 2.0 * stats.t.sf(np.abs(t), df)
        ok = (
            (counts[c] >= cfg.min_samples)
            & (counts[h] >= cfg.min_samples)
            & (t > 0)
            & (p < cfg.alpha)
            & (p < best_p)
        )
        best = np.where(ok, c, best)
        best_p = np.where(ok, p, best_p)
    return best >= 0, best


def simulate_run(
    sc: Scenario, seed: int, run: int, *, check_every_event: bool = False
) -> RunResult:
    """One run. ``check_every_event=True`` calls ``decide`` after literally every event
    (slow; used by the tests to show the screen changes nothing)."""
    r = _Run(sc, seed, run)
    best_mu = float(r.mu.max())
    t = 0
    while t < sc.horizon:
        r.end_probation_if_due()
        size = min(sc.refresh_every, sc.horizon - t)
        arms = r.route_block(size)
        counts, sums = _block_counts(r, arms)
        used = size
        if sc.rule == "policy":
            cand = (
                np.ones(size, dtype=bool)
                if check_every_event
                else _policy_candidates(r, counts, sums)
            )
            for j in map(int, np.flatnonzero(cand)):
                # Probation may end inside the block; state_at() sees that from the counts.
                decision = decide(
                    r.state_at(counts[:, j]),
                    sc.promotion,
                    np.random.default_rng([seed, run, t + j + 1]),
                    tau2=sc.tau2,
                    draws=sc.decide_draws,
                )
                if decision is not None:
                    r.apply(t + j + 1, decision.kind, _arm_index(decision), counts[:, j])
                    used = j + 1
                    break
        else:
            cand, which = _naive_candidates(r, counts, sums)
            hits = np.flatnonzero(cand)
            if hits.size:
                j = int(hits[0])
                r.apply(t + j + 1, "promote", int(which[j]), counts[:, j])
                used = j + 1
        routed = arms[:used]
        r.regret += float((best_mu - r.mu[routed]).sum())
        r.off_champion += int((routed != 0).sum())
        r.n = counts[:, used - 1].copy()
        t += used
    return RunResult(
        decisions=tuple(r.decisions),
        regret=r.regret,
        challenger_share=r.off_champion / sc.horizon,
        final_champion=r.champion,
    )


def _arm_index(decision: Decision) -> int:
    return int(decision.variant[1:])


# --------------------------------------------------------------------------- many runs


@dataclass(frozen=True, slots=True)
class ScenarioReport:
    """Figures over many runs of one scenario."""

    name: str
    runs: int
    horizon: int
    means: tuple[float, ...]
    rule: str
    promoted_rate: float
    """Share of runs with at least one promotion."""
    correct_promotion_rate: float
    """Share of runs whose *first* promotion picked a truly best arm (power; 0 in A/A)."""
    median_requests_to_promotion: float | None
    """Median request index of the first promotion, over runs that promoted."""
    rollback_rate: float
    retire_rate: float
    final_best_rate: float
    """Share of runs that end with a truly best arm as champion."""
    mean_regret: float
    equal_split_regret: float
    """Expected regret of a fixed equal split over the same horizon."""
    champion_only_regret: float
    mean_challenger_share: float
    promoted_se: float
    """Binomial standard error of ``promoted_rate``."""

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _chunk(args: tuple[Scenario, int, list[int]]) -> list[RunResult]:
    sc, seed, runs = args
    return [simulate_run(sc, seed, r) for r in runs]


def run_scenario(
    name: str, sc: Scenario, runs: int, seed: int = 0, workers: int = 1
) -> ScenarioReport:
    """``runs`` independent runs (``workers`` processes) summarised."""
    ids = list(range(runs))
    if workers > 1:
        chunks = [ids[i :: workers * 4] for i in range(workers * 4)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = [
                res
                for part in pool.map(_chunk, [(sc, seed, c) for c in chunks if c])
                for res in part
            ]
    else:
        results = _chunk((sc, seed, ids))
    mu = np.asarray(sc.means)
    best = set(np.flatnonzero(mu == mu.max()).tolist())
    firsts = [r.first("promote") for r in results]
    promoted = [f for f in firsts if f is not None]
    correct = [f for f in promoted if f[1] in best and 0 not in best]
    rate = len(promoted) / runs
    return ScenarioReport(
        name=name,
        runs=runs,
        horizon=sc.horizon,
        means=sc.means,
        rule=sc.rule,
        promoted_rate=rate,
        correct_promotion_rate=len(correct) / runs,
        median_requests_to_promotion=float(np.median([f[0] for f in promoted]))
        if promoted
        else None,
        rollback_rate=sum(r.first("rollback") is not None for r in results) / runs,
        retire_rate=sum(r.first("retire") is not None for r in results) / runs,
        final_best_rate=sum(r.final_champion in best for r in results) / runs,
        mean_regret=float(np.mean([r.regret for r in results])),
        equal_split_regret=float(sc.horizon * (mu.max() - mu.mean())),
        champion_only_regret=float(sc.horizon * (mu.max() - mu[0])),
        mean_challenger_share=float(np.mean([r.challenger_share for r in results])),
        promoted_se=math.sqrt(rate * (1.0 - rate) / runs),
    )
