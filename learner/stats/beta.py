"""Pure statistics of bounded rewards: Beta posteriors, P(best), intervals, summaries.

Everything here is a pure function of its arguments. P(best) and P(beats) live in
:mod:`learner.stats.pbest` (integrated, re-exported here); their only randomness, the Monte
Carlo for many arms, comes from a ``numpy.random.Generator`` the caller passes in (the
learner seeds it from the stream sequence), so a replay computes the same numbers.

Rewards live in [0, 1]. With 0/1 rewards and a flat Beta(1, 1) prior an arm with ``n``
rewards summing to ``S`` has the exact conjugate posterior

    Beta(alpha = 1 + S, beta = 1 + n - S).

Fractional rewards (a 1-5 rating on 0..1, a judge's score) vary less than 0/1 rewards
of the same mean: Beta(2, 2) rewards have variance 0.05 against 0.25. Treating them as
Bernoulli draws (the *Bernoulli trick*) keeps the mean right but makes the posterior
five times too wide in variance there, so Thompson sampling keeps exploring arms it
already knows apart. :meth:`ArmSummary.posterior` therefore matches the Beta to the
observed mean ``m`` and variance ``v`` (:func:`moment_posterior`): the effective sample
size is ``n m (1 - m) / v``, with ``v`` shrunk toward ``m (1 - m)`` by two pseudo-rewards
so a handful of equal scores does not make it certain. For 0/1 rewards ``v`` is
``m (1 - m)`` and this is the conjugate posterior again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from promptlab.events.models import ArmEvidence, Interval
from promptlab.lab.stats.intervals import wilson
from promptlab.learner.stats.pbest import DEFAULT_DRAWS, p_beats, p_best

__all__ = [
    "DEFAULT_DRAWS",
    "ArmSummary",
    "BetaPosterior",
    "composite_reward",
    "moment_posterior",
    "p_beats",
    "p_beats_normal",
    "p_best",
    "t_interval",
    "to_arm_evidence",
    "wilson_interval",
]

Z95 = 1.959963984540054
"""Two-sided 95 % normal quantile."""


def _tolerance(n: float) -> float:
    # Sums of floats drift; accept a relative error far below any reward resolution.
    return 1e-9 * max(1.0, float(n))


# --------------------------------------------------------------------------- posteriors

VARIANCE_PSEUDO_REWARDS = 2.0
"""Pseudo-rewards of variance ``m (1 - m)`` the observed variance is shrunk toward."""


@dataclass(frozen=True, slots=True)
class BetaPosterior:
    """A Beta(alpha, beta) posterior of an arm's mean reward."""

    alpha: float
    beta: float

    def __post_init__(self) -> None:
        if not (
            self.alpha > 0
            and self.beta > 0
            and math.isfinite(self.alpha)
            and math.isfinite(self.beta)
        ):
            raise ValueError(
                f"Beta parameters must be finite and > 0, got ({self.alpha}, {self.beta})"
            )

    @classmethod
    def from_rewards(
        cls, n: int, reward_sum: float, prior_alpha: float = 1.0, prior_beta: float = 1.0
    ) -> BetaPosterior:
        """Posterior after ``n`` rewards in [0, 1] summing to ``reward_sum`` (Bernoulli trick):
        ``alpha = prior_alpha + S``, ``beta = prior_beta + n - S``."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        s = min(max(float(reward_sum), 0.0), float(n))  # clip float drift only
        if abs(s - reward_sum) > _tolerance(n):
            raise ValueError(f"reward_sum {reward_sum} is outside [0, n={n}]")
        return cls(prior_alpha + s, prior_beta + n - s)

    @property
    def mean(self) -> float:
        """``alpha / (alpha + beta)``."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def variance(self) -> float:
        """``alpha beta / ((alpha + beta)^2 (alpha + beta + 1))``."""
        a, b = self.alpha, self.beta
        return a * b / ((a + b) ** 2 * (a + b + 1.0))

    def interval(self, level: float = 0.95) -> Interval:
        """Equal-tailed credible interval."""
        tail = (1.0 - level) / 2.0
        low, high = special.betaincinv(self.alpha, self.beta, [tail, 1.0 - tail])
        return Interval(low=float(low), high=float(high))


def moment_posterior(n: int, reward_sum: float, reward_sq_sum: float) -> BetaPosterior:
    """The posterior of an arm's mean from ``n`` rewards in [0, 1], their sum and the sum
    of their squares: ``Beta(1 + m n_eff, 1 + (1 - m) n_eff)`` with ``m`` the mean and
    ``n_eff = n m (1 - m) / v``, ``v`` the sample variance shrunk toward ``m (1 - m)`` by
    :data:`VARIANCE_PSEUDO_REWARDS`. 0/1 rewards (``sum r^2 == sum r``) get the exact
    conjugate ``Beta(1 + S, 1 + n - S)``."""
    if n <= 1 or abs(reward_sq_sum - reward_sum) <= _tolerance(n):
        return BetaPosterior.from_rewards(n, reward_sum)
    alpha, beta = moment_params(np.float64(n), np.float64(reward_sum), np.float64(reward_sq_sum))
    return BetaPosterior(float(alpha), float(beta))


def moment_params(
    n: npt.NDArray[np.float64] | np.float64,
    reward_sum: npt.NDArray[np.float64] | np.float64,
    reward_sq_sum: npt.NDArray[np.float64] | np.float64,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """:func:`moment_posterior`'s ``(alpha, beta)`` for arrays of arms (the simulator's
    Thompson shares use it); arms with 0/1 rewards, one reward or none get the
    conjugate parameters."""
    n, s, q = np.asarray(n, float), np.asarray(reward_sum, float), np.asarray(reward_sq_sum, float)
    safe_n = np.maximum(n, 2.0)
    m = np.clip(s / safe_n, 0.0, 1.0)
    bernoulli = m * (1.0 - m)
    sample = np.maximum(0.0, (q - s * s / safe_n) / (safe_n - 1.0))
    k = VARIANCE_PSEUDO_REWARDS
    v = (sample * (safe_n - 1.0) + bernoulli * k) / (safe_n - 1.0 + k)
    n_eff = np.where(v > 0, n * bernoulli / np.where(v > 0, v, 1.0), n)
    fractional = (n > 1) & (np.abs(q - s) > 1e-9 * np.maximum(1.0, n)) & (bernoulli > 0)
    alpha = np.where(fractional, 1.0 + m * n_eff, 1.0 + s)
    beta = np.where(fractional, 1.0 + (1.0 - m) * n_eff, 1.0 + n - s)
    return alpha, beta


def p_beats_normal(
    alpha_a: float | np.ndarray,
    beta_a: float | np.ndarray,
    alpha_b: float | np.ndarray,
    beta_b: float | np.ndarray,
) -> float | np.ndarray:
    """Normal approximation of P(theta_a > theta_b) for Beta posteriors (vectorised).

    ``Phi((m_a - m_b) / sqrt(v_a + v_b))`` with the Beta means and variances. Cheap and
    deterministic; the policy uses it only to *screen* (skip the Monte Carlo when an arm
    is far from a threshold), never as the decision itself.
    """
    aa, ba, ab, bb = (np.asarray(x, dtype=float) for x in (alpha_a, beta_a, alpha_b, beta_b))
    ma, mb = aa / (aa + ba), ab / (ab + bb)
    va = aa * ba / ((aa + ba) ** 2 * (aa + ba + 1.0))
    vb = ab * bb / ((ab + bb) ** 2 * (ab + bb + 1.0))
    out = special.ndtr((ma - mb) / np.sqrt(va + vb))
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------- intervals


def wilson_interval(successes: float, n: int, z: float = Z95) -> Interval:
    """Wilson score interval for a proportion (Wilson, 1927): the lab's
    :func:`lab.stats.intervals.wilson`, the one implementation, at the confidence of ``z``.

    Unlike the Wald interval it stays inside [0, 1] and keeps its coverage near 0 and 1.
    Fractional successes (sums of rewards in [0, 1]) are accepted: since a [0, 1] variable
    with mean p has variance <= p (1 - p), the interval is then conservative.
    ``n == 0`` gives [0, 1].
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n == 0:
        return Interval(low=0.0, high=1.0)
    successes = min(max(successes, 0.0), float(n))
    low, high = wilson(successes, n, confidence=2.0 * float(special.ndtr(z)) - 1.0)
    return Interval(low=low, high=high)


def t_interval(mean: float, var: float, n: int, level: float = 0.95) -> Interval:
    """Student-t interval ``mean +/- t_{n-1, (1+level)/2} sqrt(var / n)`` (``var`` is the
    unbiased sample variance). ``n < 2`` gives an unbounded interval."""
    if n < 2:
        return Interval(low=-math.inf, high=math.inf)
    if var < 0:
        raise ValueError(f"var must be >= 0, got {var}")
    half = float(stats.t.ppf((1.0 + level) / 2.0, n - 1)) * math.sqrt(var / n)
    return Interval(low=mean - half, high=mean + half)


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """Sufficient statistics of one arm, cheap to update one event at a time.

    ``n`` counts *rewarded* executions (the reward's sample size); ``executions`` counts
    all calls (the denominator of error rate and mean cost). Latency percentiles cannot
    be accumulated from sums, so the caller passes them in.
    """

    variant: str
    n: int = 0
    """Rewarded executions."""
    reward_sum: float = 0.0
    """Sum of rewards, each in [0, 1]."""
    reward_sq_sum: float = 0.0
    """Sum of squared rewards (for the sample variance of fractional rewards)."""
    executions: int = 0
    errors: int = 0
    cost_sum: float = 0.0
    """Total cost in USD over ``executions``."""
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    def __post_init__(self) -> None:
        tol = _tolerance(self.n)
        problems = []
        if self.n < 0:
            problems.append(f"n={self.n} < 0")
        if not (-tol <= self.reward_sum <= self.n + tol):
            problems.append(f"reward_sum={self.reward_sum} outside [0, n={self.n}]")
        # r in [0, 1] implies r^2 <= r, and Cauchy-Schwarz gives sum r^2 >= (sum r)^2 / n.
        if not (-tol <= self.reward_sq_sum <= self.reward_sum + tol):
            problems.append(f"reward_sq_sum={self.reward_sq_sum} outside [0, reward_sum]")
        elif self.n > 0 and self.reward_sq_sum < self.reward_sum**2 / self.n - tol:
            problems.append(f"reward_sq_sum={self.reward_sq_sum} < reward_sum^2 / n")
        if self.executions < 0 or not 0 <= self.errors <= max(self.executions, 0):
            problems.append(f"errors={self.errors} must be in [0, executions={self.executions}]")
        if self.cost_sum < -_tolerance(self.executions):
            problems.append(f"cost_sum={self.cost_sum} < 0")
        if problems:
            raise ValueError(f"invalid ArmSummary {self.variant!r}: " + "; ".join(problems))

    # ---- derived numbers

    @property
    def mean(self) -> float:
        """Sample mean reward; NaN when ``n == 0``."""
        return self.reward_sum / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Unbiased sample variance ``(sum r^2 - n mean^2) / (n - 1)``; 0 when ``n < 2``."""
        if self.n < 2:
            return 0.0
        return max(0.0, (self.reward_sq_sum - self.reward_sum**2 / self.n) / (self.n - 1))

    @property
    def error_rate(self) -> float | None:
        """``errors / executions``; None before any execution."""
        return self.errors / self.executions if self.executions else None

    @property
    def cost_mean_usd(self) -> float | None:
        """Mean cost per call; None before any execution."""
        return max(self.cost_sum, 0.0) / self.executions if self.executions else None

    @property
    def posterior(self) -> BetaPosterior:
        """Beta(1 + S, 1 + n - S) for 0/1 rewards; for fractional ones the Beta of the
        same mean and the observed spread (:func:`moment_posterior`)."""
        return moment_posterior(self.n, self.reward_sum, self.reward_sq_sum)

    def reward_interval(self, z: float = Z95) -> Interval:
        """Wilson interval of the mean reward (see :func:`wilson_interval`)."""
        return wilson_interval(self.reward_sum, self.n, z)

    # ---- streaming updates (each returns a new summary)

    def with_reward(self, reward: float) -> ArmSummary:
        """This summary plus one reward in [0, 1]."""
        if not 0.0 <= reward <= 1.0:
            raise ValueError(f"reward must be in [0, 1], got {reward}")
        return _replace(
            self,
            n=self.n + 1,
            reward_sum=self.reward_sum + reward,
            reward_sq_sum=self.reward_sq_sum + reward * reward,
        )

    def with_execution(self, cost_usd: float = 0.0, error: bool = False) -> ArmSummary:
        """This summary plus one execution (reward arrives separately, maybe later)."""
        return _replace(
            self,
            executions=self.executions + 1,
            errors=self.errors + int(error),
            cost_sum=self.cost_sum + cost_usd,
        )

    def since(self, earlier: ArmSummary) -> ArmSummary:
        """The data added after ``earlier`` (an older summary of the same arm).

        Sums subtract exactly; latency percentiles do not, so they are dropped (None).
        Used for a champion's record since its promotion.
        """
        if earlier.n > self.n or earlier.executions > self.executions:
            raise ValueError("`earlier` has more data than this summary")
        n = self.n - earlier.n
        s = min(max(self.reward_sum - earlier.reward_sum, 0.0), float(n))
        sq = min(max(self.reward_sq_sum - earlier.reward_sq_sum, s * s / n if n else 0.0), s)
        return ArmSummary(
            variant=self.variant,
            n=n,
            reward_sum=s,
            reward_sq_sum=sq,
            executions=self.executions - earlier.executions,
            errors=max(0, self.errors - earlier.errors),
            cost_sum=max(0.0, self.cost_sum - earlier.cost_sum),
        )


def _replace(s: ArmSummary, **changes: object) -> ArmSummary:
    fields = {
        "variant": s.variant,
        "n": s.n,
        "reward_sum": s.reward_sum,
        "reward_sq_sum": s.reward_sq_sum,
        "executions": s.executions,
        "errors": s.errors,
        "cost_sum": s.cost_sum,
        "latency_p50_ms": s.latency_p50_ms,
        "latency_p95_ms": s.latency_p95_ms,
    }
    fields.update(changes)
    return ArmSummary(**fields)  # type: ignore[arg-type]


def to_arm_evidence(summary: ArmSummary, z: float = Z95) -> ArmEvidence:
    """The :class:`~events.models.ArmEvidence` of a summary (Wilson reward interval)."""
    return ArmEvidence(
        variant=summary.variant,
        n=summary.n,
        reward_mean=summary.mean if summary.n else 0.0,
        reward_interval=summary.reward_interval(z) if summary.n else None,
        error_rate=summary.error_rate,
        cost_mean_usd=summary.cost_mean_usd,
        latency_p95_ms=summary.latency_p95_ms,
    )


# --------------------------------------------------------------------------- rewards


def composite_reward(
    feedback_value: bool | float,
    cost_usd: float = 0.0,
    latency_ms: float = 0.0,
    cost_weight: float = 0.0,
    latency_weight: float = 0.0,
) -> float:
    """One call's reward in [0, 1]:

        r = clip01( clip01(v) - cost_weight * cost_usd - latency_weight * latency_ms / 1000 )

    ``v`` is the feedback (True/False -> 1/0); ``cost_weight`` is reward lost per USD and
    ``latency_weight`` reward lost per second, the units of a prompt's ``[reward]`` section
    (:class:`learner.projection.reward.RewardRule` applies it to every rewarded call).
    """
    if cost_weight < 0 or latency_weight < 0:
        raise ValueError("weights must be >= 0")
    v = (
        (1.0 if feedback_value else 0.0)
        if isinstance(feedback_value, bool)
        else float(feedback_value)
    )
    if math.isnan(v):
        raise ValueError("feedback value is NaN")
    v = min(max(v, 0.0), 1.0)
    r = v - cost_weight * cost_usd - latency_weight * latency_ms / 1000.0
    return min(max(r, 0.0), 1.0)
