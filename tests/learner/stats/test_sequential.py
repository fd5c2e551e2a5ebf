"""The normal-mixture mSPRT: formula, monotonicity, and level under continuous monitoring."""

from __future__ import annotations

import math

import numpy as np
import pytest

from promptlab.learner.stats.beta import ArmSummary
from promptlab.learner.stats.sequential import (
    DEFAULT_TAU2,
    MIN_SEQUENTIAL_N,
    boundary_z,
    log_lambda,
    msprt,
)


def bernoulli(variant: str, n: int, p: float) -> ArmSummary:
    s = round(n * p)
    return ArmSummary(variant, n=n, reward_sum=s, reward_sq_sum=s)


def test_equal_allocation_matches_johari_closed_form() -> None:
    # Johari et al.: Lambda = sqrt(V/(V+n tau2)) exp(n^2 tau2 d^2 / (2 V (V + n tau2))).
    a, b = bernoulli("a", 1000, 0.50), bernoulli("b", 1000, 0.56)
    result = msprt(b, a)
    v = a.variance + b.variance
    n, t2, d = 1000, DEFAULT_TAU2, b.mean - a.mean
    expected = 0.5 * math.log(v / (v + n * t2)) + n * n * t2 * d * d / (2 * v * (v + n * t2))
    assert result.log_lambda == pytest.approx(expected, rel=1e-12)
    assert result.p_value == pytest.approx(min(1.0, math.exp(-expected)))


def test_identical_data_gives_no_evidence() -> None:
    a, b = bernoulli("a", 5000, 0.5), bernoulli("b", 5000, 0.5)
    result = msprt(b, a)
    assert result.p_value == 1.0
    assert not result.rejects(0.05)
    ci = result.confidence_sequence(0.05)
    assert ci.low < 0 < ci.high


def test_p_value_decreases_as_evidence_accumulates() -> None:
    ps = [
        msprt(bernoulli("b", n, 0.55), bernoulli("a", 4 * n, 0.50)).p_value
        for n in (200, 500, 1000, 2000, 4000, 8000)
    ]
    assert ps == sorted(ps, reverse=True)
    assert ps[0] > 0.05 > ps[-1]


def test_running_minimum_and_small_samples() -> None:
    strong = msprt(bernoulli("b", 3000, 0.56), bernoulli("a", 3000, 0.50))
    weak = msprt(bernoulli("b", 3000, 0.51), bernoulli("a", 3000, 0.50), previous_p=strong.p_value)
    assert weak.p_value == strong.p_value  # the always-valid p-value never goes back up
    tiny = msprt(bernoulli("b", MIN_SEQUENTIAL_N - 1, 1.0), bernoulli("a", 500, 0.0))
    assert tiny.p_value == 1.0


def test_confidence_sequence_excludes_zero_exactly_when_the_test_rejects() -> None:
    for lift in np.linspace(0.0, 0.08, 17):
        r = msprt(bernoulli("b", 2000, 0.5 + lift), bernoulli("a", 6000, 0.5))
        ci = r.confidence_sequence(0.05)
        assert (ci.low > 0) == r.rejects(0.05)


def test_boundary_is_near_three_standard_errors_at_the_best_mixing_ratio() -> None:
    zs = {r: boundary_z(DEFAULT_TAU2 / r, 0.05) for r in (1, 5, 8, 10, 100)}
    assert min(zs.values()) == pytest.approx(3.04, abs=0.02)
    assert zs[8] < zs[1] and zs[8] < zs[100]


def test_level_holds_under_a_check_after_every_pair_while_a_repeated_z_test_does_not() -> None:
    # 400 A/A runs of 4,000 pairs of Bernoulli(0.5) rewards, tested after every pair.
    rng = np.random.default_rng(2024)
    runs, pairs = 400, 4000
    a = rng.random((runs, pairs)) < 0.5
    b = rng.random((runs, pairs)) < 0.5
    n = np.arange(1, pairs + 1)
    ma, mb = a.cumsum(1) / n, b.cumsum(1) / n
    var = np.maximum(ma * (1 - ma), 1e-3) + np.maximum(mb * (1 - mb), 1e-3)
    s2 = var / n
    lift = mb - ma
    start = MIN_SEQUENTIAL_N
    ll = np.asarray(log_lambda(lift[:, start:], s2[:, start:]))
    msprt_rate = (ll >= math.log(20)).any(axis=1).mean()
    z_rate = (np.abs(lift[:, start:]) / np.sqrt(s2[:, start:]) > 1.96).any(axis=1).mean()
    assert msprt_rate <= 0.06
    assert z_rate > 0.25
