"""The scenario simulator decides as the learner does: the same rewarded calls, fed to
the learner's own test functions (:mod:`learner.policy.concurrent`), cross the promotion
and rollback thresholds at the very call where the simulator acted."""

from __future__ import annotations

from etest_reference import RewardStep, concurrent_tests, probation_test

from bench.scenarios import Policy, Row, _Sim, probation_length


def _steps(trace: list[tuple[int, int, float, float]]) -> list[RewardStep]:
    return [
        RewardStep(sequence=i + 1, variant=f"a{arm}", reward=y, probability=p)
        for i, (_, arm, y, p) in enumerate(trace)
    ]


def test_a_promotion_happens_at_the_call_the_learner_would_promote() -> None:
    # Without the guards (min_samples, P(beats)) the promotion is the crossing itself.
    unguarded = Policy(min_samples=0, threshold=0.0)
    sim = _Sim(Row("+10", (0.5, 0.6), horizon=8_000, policy=unguarded), 4, seed=11, trace=True)
    out = sim.run()
    assert sim.trace is not None and out.promoted[0] >= 0
    steps = _steps(sim.trace)
    at = next(i for i, (t, *_) in enumerate(sim.trace) if t == out.promoted[0])

    def promotes(upto: int) -> bool:
        # a1's is the first test the prompt starts (as the learner numbers it).
        tests = concurrent_tests(steps[: upto + 1], {"a1": (1, 0)}, "a0", alpha=0.05, min_lift=0.0)
        return tests["a1"].promotes

    assert promotes(at) and not promotes(at - 1)


def test_a_rollback_happens_at_the_call_the_learner_would_roll_back() -> None:
    row = Row("-10 forced", (0.6, 0.5), horizon=9_000, force_at=2_000)
    sim = _Sim(row, 4, seed=12, trace=True)
    out = sim.run()
    assert sim.trace is not None and out.rolled_back[0] >= 0
    steps = _steps(sim.trace)
    # The forced promotion takes effect at request 2,000: steps after it are probation.
    promoted_at = next(i for i, (t, *_) in enumerate(sim.trace) if t >= 2_000)
    at = next(i for i, (t, *_) in enumerate(sim.trace) if t == out.rolled_back[0])
    length = probation_length(row.policy)

    def rolls_back(upto: int) -> bool:
        return probation_test(
            steps[: upto + 1],
            promoted_at,
            "a1",
            "a0",
            length=length,
            rollback_alpha=row.policy.rollback_alpha,
            holdback=row.policy.holdback,
        ).rolls_back

    assert rolls_back(at) and not rolls_back(at - 1)


def test_the_guards_hold_a_crossing_back_until_they_pass() -> None:
    guarded = _Sim(Row("+10", (0.5, 0.6), horizon=8_000), 4, seed=11, trace=True)
    out = guarded.run()
    assert guarded.trace is not None and out.promoted[0] >= 0
    # The guards are checked on the counts at the end of each block of 100 requests.
    block_end = (int(out.promoted[0]) // 100 + 1) * 100
    counts = {0: 0, 1: 0}
    for t, arm, _, _ in guarded.trace:
        if t < block_end:
            counts[arm] += 1
    assert min(counts.values()) >= 200  # min_samples rewards on both arms first
    unguarded = _Sim(
        Row("+10", (0.5, 0.6), horizon=8_000, policy=Policy(min_samples=0, threshold=0.0)),
        4,
        seed=11,
    ).run()
    assert out.promoted[0] >= unguarded.promoted[0]
