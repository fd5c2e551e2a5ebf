"""The scenario simulator: it replays exactly, routes as the sidecar does, and its
statistics behave on a few small rows (the full matrix is ``python -m bench --only
simulation``)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.scenario_routing import CHALLENGER, CHAMPION, HOLDBACK, allocate, least_shares
from bench.scenarios import Row, _Sim, simulate
from promptlab.prompts.routing import (
    cap_exploration,
    challenger_floor,
    floor_shares,
    with_holdback,
)


def test_same_seed_same_outcome() -> None:
    row = Row("+5", (0.5, 0.55), horizon=4_000)
    a, b = simulate(row, 20, seed=5), simulate(row, 20, seed=5)
    assert (a.promoted == b.promoted).all() and (a.regret == b.regret).all()


def test_routing_shares_are_the_sidecars() -> None:
    row = Row("many", (0.5, 0.5, 0.5, 0.5), horizon=1_000)
    sim = _Sim(row, 200, seed=1)
    rng = np.random.default_rng(2)
    sim.post_n[:] = rng.integers(0, 400, sim.post_n.shape)
    sim.post_s[:] = sim.post_n * rng.uniform(0.3, 0.7, sim.post_n.shape)
    sim.status[:, 1:] = CHALLENGER
    sim.status[:, 0] = CHAMPION
    sim.status[::3, 3] = 0  # some runs have only two challengers live
    live = (sim.status == CHAMPION) | (sim.status == CHALLENGER)
    pbest = rng.dirichlet(np.ones(4), 200) * live
    pbest /= pbest.sum(axis=1, keepdims=True)
    got = allocate(pbest, sim.status, 0.2, 0.05, 0.2)
    for r in range(200):
        arms = [i for i in range(4) if live[r, i]]
        want = floor_shares(cap_exploration([pbest[r, i] for i in arms], 0, 0.2), 0, 0.2, 0.05)
        assert [got[r, i] for i in arms] == pytest.approx(want, abs=1e-12)
        assert min(want) >= challenger_floor(0.05, 0.2, len(arms) - 1) - 1e-12
    least = least_shares(sim.status, 0.2, 0.05)
    for r in range(200):
        k = int((sim.status[r] == CHALLENGER).sum())
        assert least[r] == pytest.approx(challenger_floor(0.05, 0.2, k), abs=1e-15)


def test_holdback_shares_are_the_sidecars() -> None:
    row = Row("probation", (0.5, 0.5, 0.5), horizon=1_000)
    sim = _Sim(row, 50, seed=1)
    sim.status[:, 0] = CHAMPION
    sim.status[:, 1] = CHALLENGER
    sim.status[:, 2] = HOLDBACK
    rng = np.random.default_rng(3)
    pbest = np.zeros((50, 3))
    pbest[:, :2] = rng.dirichlet(np.ones(2), 50)
    got = allocate(pbest, sim.status, 0.2, 0.05, 0.2)
    for r in range(50):
        base = floor_shares(cap_exploration(list(pbest[r, :2]), 0, 0.2), 0, 0.2, 0.05)
        assert list(got[r]) == pytest.approx(with_holdback(base, 0.2), abs=1e-12)


def test_small_rows_behave() -> None:
    aa = simulate(Row("A/A", (0.5, 0.5), horizon=10_000), 100, seed=3)
    assert (aa.promoted >= 0).mean() <= 0.08
    better = simulate(Row("+10", (0.5, 0.6), horizon=10_000), 100, seed=4)
    assert (better.promoted >= 0).mean() >= 0.95
    assert (better.promoted_arm[better.promoted >= 0] == 1).all()
    worse = simulate(Row("-10 forced", (0.6, 0.5), horizon=12_000, force_at=2_000), 100, seed=6)
    assert (worse.rolled_back >= 0).mean() >= 0.9


def test_sticky_subjects_keep_arms_until_the_champion_changes() -> None:
    out = simulate(Row("+10", (0.5, 0.6), horizon=10_000, subjects=300), 50, seed=7)
    assert (out.promoted >= 0).mean() >= 0.9
