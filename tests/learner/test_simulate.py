"""The simulation harness: faithful to ``decide`` and sane in its figures."""

from __future__ import annotations

import pytest

from learner.policy.simulate import Allocator, Scenario, run_scenario, simulate_run
from prompts.config import PromotionConfig

FAST = PromotionConfig(min_samples=100, probation_samples=150)


@pytest.mark.parametrize(
    ("means", "allocator"),
    [((0.45, 0.60), "sidecar"), ((0.60, 0.45), "sidecar"), ((0.5, 0.5, 0.62), "per_request")],
)
def test_screened_runs_equal_a_decide_after_every_event(
    means: tuple[float, ...], allocator: Allocator
) -> None:
    # Promotions, probation and retirements go through the screen; the outcome must be
    # identical to calling decide() after every event. (No rollback occurs in these runs;
    # the rollback screen is covered only by its construction.)
    sc = Scenario(
        means=means,
        horizon=5000,
        allocator=allocator,
        refresh_every=50,
        promotion=FAST,
        decide_draws=2000,
    )
    for run in range(2):
        screened = simulate_run(sc, seed=3, run=run)
        literal = simulate_run(sc, seed=3, run=run, check_every_event=True)
        assert screened == literal
    assert any(simulate_run(sc, seed=3, run=r).decisions for r in range(2))


def test_runs_replay_identically_for_a_seed() -> None:
    sc = Scenario(means=(0.5, 0.55), horizon=8000)
    assert simulate_run(sc, seed=1, run=4) == simulate_run(sc, seed=1, run=4)


def test_champion_keeps_at_least_one_minus_the_cap() -> None:
    allocators: tuple[Allocator, ...] = ("sidecar", "per_request")
    for allocator in allocators:
        sc = Scenario(means=(0.5, 0.5, 0.5), horizon=4000, allocator=allocator, exploration_cap=0.2)
        result = simulate_run(sc, seed=0, run=0)
        assert not result.decisions or result.decisions[0][1] != "promote"
        assert result.challenger_share <= 0.2 + 0.03  # binomial noise on 4,000 requests


def test_small_simulation_gives_sane_figures() -> None:
    power = run_scenario("+5", Scenario(means=(0.50, 0.55)), runs=12, seed=9)
    assert power.correct_promotion_rate >= 0.75
    assert (
        power.median_requests_to_promotion is not None
        and 1000 < power.median_requests_to_promotion < 20_000
    )
    assert power.mean_regret < power.equal_split_regret < power.champion_only_regret
    aa = run_scenario("A/A", Scenario(means=(0.5, 0.5), horizon=6000), runs=12, seed=9)
    assert aa.promoted_rate <= 0.2
    assert aa.correct_promotion_rate == 0.0
    naive = run_scenario(
        "A/A", Scenario(means=(0.5, 0.5), horizon=6000, rule="naive"), runs=12, seed=9
    )
    assert naive.promoted_rate >= aa.promoted_rate
