"""The allocation-aware betting e-process and e-LOND: known answers and error rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from promptlab.learner.policy.fdr import ELond, gamma, log_threshold
from promptlab.learner.stats.etest import BetState, bet, ipw_increment, wealth_path


def test_the_increment_is_the_lift_whatever_the_allocation_and_the_baseline() -> None:
    rng = np.random.default_rng(7)
    n = 400_000
    p_c = rng.uniform(0.05, 0.5, n)  # allocation changes all the time
    served_c = rng.random(n) < p_c
    mu = np.where(served_c, 0.62, 0.60)
    y = (rng.random(n) < mu).astype(float)
    baseline = rng.uniform(0, 1, n)  # any predictable baseline
    x = ipw_increment(served_c, ~served_c, y, baseline, np.where(served_c, p_c, 1 - p_c))
    assert x.mean() == pytest.approx(0.02, abs=0.006)


def test_block_path_equals_step_by_step() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0.05, 1.0, 300)
    mask = rng.random(300) < 0.8
    step = BetState(null=0.01, bound=20.0).steps(x[mask])
    path, sy, sy2, n, lw = wealth_path(
        x[None, :], mask[None, :], *(np.zeros(1) for _ in range(4)), 0.01, 20.0
    )
    assert lw[0] == pytest.approx(step.log_wealth, rel=1e-9)
    assert (sy[0], sy2[0], n[0]) == (pytest.approx(step.sum_y), pytest.approx(step.sum_y2), step.n)
    assert path[0].max() == pytest.approx(step.max_log_wealth, rel=1e-9)


def test_bets_are_never_negative_and_never_lose_more_than_half() -> None:
    assert float(bet(-5.0, 10.0, 100, 0.0, 20.0)) == 0.0
    lam = float(bet(100.0, 101.0, 100, 0.0, 20.0))  # Kelly 0.46, above the cap
    assert lam == pytest.approx(0.5 / 20.0)
    # Whatever the history, the worst step (a loss of the bound) keeps half the wealth.
    for sum_y, sum_y2, n, null, bound in [
        (3.0, 4.0, 10, 0.0, 2.0),
        (50.0, 60.0, 200, 0.01, 8.0),
        (0.5, 100.0, 3, -0.02, 40.0),
        (1e3, 1e3, 1000, 0.0, 1.5),
    ]:
        worst = 1 + float(bet(sum_y, sum_y2, n, null, bound)) * (-bound)
        assert worst >= 0.5 - 1e-12


def test_a_null_with_drift_and_changing_allocation_rarely_crosses() -> None:
    # 2,000 runs of 5,000 steps of an A/A pair whose rate drifts and whose allocation
    # swings: sup of the wealth >= 1/alpha in at most ~alpha of the runs (Ville).
    rng = np.random.default_rng(11)
    runs, steps, alpha = 2000, 5000, 0.05
    t = np.linspace(0, 1, steps)[None, :]
    mu = 0.4 + 0.2 * t
    p_c = 0.05 + 0.3 * (np.sin(6 * t) + 1) / 2
    served_c = rng.random((runs, steps)) < p_c
    y = (rng.random((runs, steps)) < mu).astype(float)
    x = ipw_increment(served_c, ~served_c, y, 0.5, np.where(served_c, p_c, 1 - p_c))
    zeros = np.zeros(runs)
    path, *_ = wealth_path(x, np.ones_like(x, dtype=bool), zeros, zeros, zeros, zeros, 0.0, 20.0)
    crossed = (path.max(axis=1) >= math.log(1 / alpha)).mean()
    assert crossed <= alpha
    # ... and a real lift of 5 points does cross.
    y1 = (rng.random((runs, steps)) < mu + 0.05 * served_c).astype(float)
    x1 = ipw_increment(served_c, ~served_c, y1, 0.5, np.where(served_c, p_c, 1 - p_c))
    path1, *_ = wealth_path(x1, np.ones_like(x, dtype=bool), zeros, zeros, zeros, zeros, 0.0, 20.0)
    assert (path1.max(axis=1) >= math.log(1 / alpha)).mean() > 0.5


def test_elond_budget_sums_to_at_most_one_and_discoveries_relax_it() -> None:
    assert sum(gamma(j) for j in range(1, 100_000)) < 1.0
    ledger, j1 = ELond(alpha=0.05).start()
    ledger, j2 = ledger.start()
    assert (j1, j2) == (1, 2)
    assert ledger.threshold(1) == pytest.approx(math.log(1 / (0.05 * 0.5)))
    relaxed = ledger.discovered()
    assert relaxed.threshold(2) == pytest.approx(log_threshold(0.05, 2, 1))
    assert relaxed.threshold(2) < ledger.threshold(2)
    with pytest.raises(ValueError):
        gamma(0)


def test_an_empty_block_changes_nothing() -> None:
    zero = np.zeros(1)
    path, sy, _, n, lw = wealth_path(
        np.zeros((1, 0)), np.zeros((1, 0), dtype=bool), zero, zero, zero, zero, 0.0, 20.0
    )
    assert path.shape == (1, 0) and (sy[0], n[0], lw[0]) == (0.0, 0.0, 0.0)
