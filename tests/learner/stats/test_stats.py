"""Known answers for the pure statistics of learner.stats.beta."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from promptlab.learner.stats import pbest
from promptlab.learner.stats.beta import (
    ArmSummary,
    BetaPosterior,
    composite_reward,
    p_beats,
    p_beats_normal,
    p_best,
    t_interval,
    to_arm_evidence,
    wilson_interval,
)


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I,
# method 3 (Wilson score, no continuity correction).
@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombe(successes: int, n: int, low: float, high: float) -> None:
    ci = wilson_interval(successes, n)
    assert ci.low == pytest.approx(low, abs=5e-5)
    assert ci.high == pytest.approx(high, abs=5e-5)


def test_wilson_interval_without_data_is_the_unit_interval() -> None:
    ci = wilson_interval(0, 0)
    assert (ci.low, ci.high) == (0.0, 1.0)


def test_t_interval_matches_textbook_quantile() -> None:
    # n = 10, t_{9, 0.975} = 2.262157; sd 2 -> half width 2.262157 * 2 / sqrt(10).
    ci = t_interval(5.0, 4.0, 10)
    half = 2.2621571627 * 2.0 / math.sqrt(10)
    assert ci.low == pytest.approx(5.0 - half, rel=1e-9)
    assert ci.high == pytest.approx(5.0 + half, rel=1e-9)
    assert math.isinf(t_interval(0.5, 0.1, 1).high)


def test_beta_posterior_uses_the_bernoulli_trick_for_fractional_rewards() -> None:
    post = BetaPosterior.from_rewards(n=10, reward_sum=6.5)
    assert (post.alpha, post.beta) == (7.5, 4.5)
    assert post.mean == pytest.approx(7.5 / 12)
    with pytest.raises(ValueError):
        BetaPosterior.from_rewards(n=3, reward_sum=4.0)


def test_p_best_of_clearly_separated_arms_is_near_one() -> None:
    rng = np.random.default_rng(7)
    good = BetaPosterior.from_rewards(2000, 1400)  # 0.70
    bad = BetaPosterior.from_rewards(2000, 1000)  # 0.50
    probs = p_best([bad, good], rng)
    assert probs[1] > 0.999
    assert probs.sum() == pytest.approx(1.0)


def test_p_best_of_equal_arms_is_near_half_and_matches_the_exact_integral() -> None:
    rng = np.random.default_rng(11)
    a = BetaPosterior.from_rewards(500, 250)
    assert p_beats(a, a, rng, draws=40_000) == pytest.approx(0.5, abs=0.01)
    # Close but unequal arms against numerical integration of P(X > Y).
    x, y = BetaPosterior(60, 40), BetaPosterior(55, 45)
    exact = integrate.quad(
        lambda t: stats.beta.pdf(t, y.alpha, y.beta) * stats.beta.sf(t, x.alpha, x.beta), 0, 1
    )[0]
    assert p_beats(x, y, rng, draws=40_000) == pytest.approx(exact, abs=0.01)
    assert p_beats_normal(x.alpha, x.beta, y.alpha, y.beta) == pytest.approx(exact, abs=0.01)


def test_p_best_is_deterministic_for_a_seed_and_handles_one_arm() -> None:
    arms = [BetaPosterior(10, 12), BetaPosterior(12, 10), BetaPosterior(11, 11)]
    first = p_best(arms, np.random.default_rng(3))
    again = p_best(arms, np.random.default_rng(3))
    assert np.array_equal(first, again)
    assert p_best(arms[:1], np.random.default_rng(3)).tolist() == [1.0]


def test_arm_summary_streams_and_subtracts() -> None:
    s = ArmSummary("v1")
    for r in (1.0, 0.0, 0.5, 1.0):
        s = s.with_reward(r).with_execution(cost_usd=0.01)
    s = s.with_execution(cost_usd=0.01, error=True)
    assert s.n == 4 and s.executions == 5 and s.errors == 1
    assert s.mean == pytest.approx(0.625)
    assert s.variance == pytest.approx(np.var([1.0, 0.0, 0.5, 1.0], ddof=1))
    assert s.error_rate == pytest.approx(0.2)
    assert s.cost_mean_usd == pytest.approx(0.01)
    later = s.with_reward(1.0).with_reward(0.0)
    delta = later.since(s)
    assert (delta.n, delta.reward_sum, delta.executions) == (2, 1.0, 0)
    assert to_arm_evidence(s).reward_interval is not None


@pytest.mark.parametrize(
    "fields",
    [
        {"n": -1},
        {"n": 2, "reward_sum": 3.0, "reward_sq_sum": 3.0},
        {"n": 2, "reward_sum": 1.0, "reward_sq_sum": 1.5},
        {"n": 4, "reward_sum": 2.0, "reward_sq_sum": 0.5},  # below sum^2 / n
        {"executions": 1, "errors": 2},
    ],
)
def test_arm_summary_rejects_impossible_sums(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ArmSummary("v", **fields)  # type: ignore[arg-type]


def test_composite_reward_weights_cost_and_latency_and_clips() -> None:
    assert composite_reward(True) == 1.0
    assert composite_reward(False) == 0.0
    assert composite_reward(
        0.8, cost_usd=0.1, latency_ms=500, cost_weight=1.0, latency_weight=0.2
    ) == pytest.approx(0.6)
    assert composite_reward(0.1, cost_usd=1.0, cost_weight=5.0) == 0.0
    assert composite_reward(1.7) == 1.0


def _fine_p_best(arms: list[BetaPosterior]) -> np.ndarray:
    # A much finer grid of the same integral: 21 cuts per arm, 24 nodes per panel.
    saved = pbest._BREAK_Q, pbest._NODES, pbest._WEIGHTS
    q = [1e-14, 1e-11, 1e-9, 1e-7, 1e-5, 1e-3, 0.01, 0.05, 0.15, 0.3, 0.5]
    pbest._BREAK_Q = np.array(q + [1 - x for x in reversed(q[:-1])])
    pbest._NODES, pbest._WEIGHTS = np.polynomial.legendre.leggauss(24)
    try:
        return pbest.p_best_exact(arms)
    finally:
        pbest._BREAK_Q, pbest._NODES, pbest._WEIGHTS = saved


@pytest.mark.parametrize("n_a", [30, 2000, 50_000])
@pytest.mark.parametrize("n_b", [30, 200, 50_000])
@pytest.mark.parametrize(("p_a", "p_b"), [(0.0, 0.02), (0.5, 0.51), (0.98, 0.5), (0.3, 1.0)])
def test_integrated_p_beats_is_accurate_across_sample_sizes(
    n_a: int, n_b: int, p_a: float, p_b: float
) -> None:
    a = BetaPosterior.from_rewards(n_a, round(n_a * p_a))
    b = BetaPosterior.from_rewards(n_b, round(n_b * p_b))
    fine = _fine_p_best([a, b])
    assert p_beats(a, b) == pytest.approx(fine[0], abs=1e-8)
    assert p_best([a, b], np.random.default_rng(0)) == pytest.approx(fine, abs=1e-8)


def test_integrated_p_best_matches_monte_carlo_and_falls_back_for_many_arms() -> None:
    arms = [BetaPosterior(60, 40), BetaPosterior(300, 250), BetaPosterior(20, 15)]
    exact = p_best(arms, np.random.default_rng(0))
    mc = pbest.p_best_monte_carlo(arms, np.random.default_rng(1), 400_000)
    assert exact == pytest.approx(mc, abs=0.003) and exact.sum() == pytest.approx(1.0)
    assert exact.tolist() == p_best(arms, np.random.default_rng(99)).tolist()  # no rng used
    many = [BetaPosterior(10 + i, 10) for i in range(pbest.EXACT_MAX_ARMS + 1)]
    first = p_best(many, np.random.default_rng(3), 2000)
    assert first.tolist() == p_best(many, np.random.default_rng(3), 2000).tolist()
    assert first.tolist() != p_best(many, np.random.default_rng(4), 2000).tolist()


def test_fractional_rewards_get_a_posterior_as_wide_as_their_spread() -> None:
    from promptlab.learner.stats.beta import moment_posterior

    rng = np.random.default_rng(4)
    r = rng.beta(2.0, 2.0, 4000)  # variance 0.05: a fifth of 0/1 rewards' 0.25
    post = moment_posterior(len(r), float(r.sum()), float((r * r).sum()))
    standard_error = float(r.std(ddof=1)) / math.sqrt(len(r))
    assert post.mean == pytest.approx(r.mean(), abs=1e-3)
    assert math.sqrt(post.variance) == pytest.approx(standard_error, rel=0.05)
    # The Bernoulli trick would be about sqrt(5) times wider.
    trick = BetaPosterior.from_rewards(len(r), float(r.sum()))
    assert math.sqrt(trick.variance) > 2.0 * math.sqrt(post.variance)
    # 0/1 rewards: exactly the conjugate posterior.
    b = (rng.random(500) < 0.3).astype(float)
    assert moment_posterior(500, float(b.sum()), float(b.sum())) == BetaPosterior.from_rewards(
        500, float(b.sum())
    )
    # A few equal scores: confident, not certain (two pseudo-rewards of 0/1 spread).
    few = moment_posterior(3, 2.1, 3 * 0.49)
    assert few.mean == pytest.approx(0.7, abs=0.05) and math.isfinite(few.alpha)
    assert few.alpha + few.beta < 30


def test_one_percentile_rule_for_raw_values_and_the_histogram() -> None:
    from promptlab.learner.storage.percentiles import nearest_rank, nearest_rank_counts

    values = [5.0, 1.0, 3.0, 2.0, 4.0, 4.0, 9.0, 7.0, 6.0, 8.0]
    counts = sorted((v, values.count(v)) for v in set(values))
    for q in (0.0, 0.1, 0.5, 0.9, 0.95, 0.99, 1.0):
        assert nearest_rank(values, q) == nearest_rank_counts(counts, q)
    assert nearest_rank(values, 0.5) == 4.0  # rank 5 of 10: an observed value, never 4.5
    assert nearest_rank(values, 0.95) == 9.0
    assert nearest_rank([], 0.5) is None and nearest_rank_counts([], 0.5) is None
