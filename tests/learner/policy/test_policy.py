"""The promotion / rollback / retirement policy, one rule at a time."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from promptlab.events.models import (
    VariantPromoted,
    VariantRetired,
    VariantRolledBack,
    deterministic_event_id,
)
from promptlab.learner.policy.guards import retire_screen
from promptlab.learner.policy.probation import error_rate_breach
from promptlab.learner.policy.rules import (
    Decision,
    Probation,
    PromptState,
    check_promotion,
    decide,
    lift_with_interval,
    recommendation,
)
from promptlab.learner.stats.beta import ArmSummary
from promptlab.learner.stats.etest import probation_steps
from promptlab.prompts.config import PromotionConfig

CFG = PromotionConfig()  # threshold 0.95, min_samples 200, min_lift 0.01, alpha 0.05


def arm(
    variant: str, n: int, p: float, *, errors: int = 0, cost: float = 0.001, p95: float = 800.0
) -> ArmSummary:
    s = round(n * p)
    return ArmSummary(
        variant,
        n=n,
        reward_sum=s,
        reward_sq_sum=s,
        executions=n,
        errors=errors,
        cost_sum=cost * n,
        latency_p95_ms=p95,
    )


def state(
    challenger_mean: float = 0.56,
    n_challenger: int = 2000,
    *,
    errors: int = 0,
    cost: float = 0.001,
    p95: float = 800.0,
) -> PromptState:
    challenger = arm("v2", n_challenger, challenger_mean, errors=errors, cost=cost, p95=p95)
    return PromptState.of("v1", [arm("v1", 8000, 0.50), challenger])


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- promotion


def test_a_clearly_better_challenger_is_promoted_with_its_evidence() -> None:
    d = decide(state(), CFG, rng())
    assert d is not None and d.kind == "promote"
    assert (d.variant, d.counterpart) == ("v2", "v1")
    ev = d.evidence
    assert ev.challenger.n == 2000 and ev.champion.n == 8000
    assert ev.challenger.reward_mean == pytest.approx(0.56)
    assert ev.challenger.reward_interval is not None and ev.champion.reward_interval is not None
    assert ev.p_better is not None and ev.p_better >= 0.95
    assert ev.p_value is not None and ev.p_value <= 0.05
    assert ev.lift == pytest.approx(0.06)
    assert ev.lift_interval is not None and 0 < ev.lift_interval.low < 0.06 < ev.lift_interval.high
    assert "mSPRT" in ev.rule and "P(v2>v1)" in ev.rule


@pytest.mark.parametrize(
    ("the_state", "config", "guard"),
    [
        (state(), CFG.model_copy(update={"min_samples": 2500}), "min_samples"),
        (state(), CFG.model_copy(update={"min_lift": 0.08}), "min_lift"),
        (state(0.53), CFG, "mSPRT"),  # P(beats) ~ 0.99 and lift 0.03, but p ~ 0.22
        (state(0.54), CFG.model_copy(update={"threshold": 0.9999}), "threshold"),  # p ~ 0.03
        (state(cost=0.02), CFG.model_copy(update={"max_cost_usd": 0.01}), "max_cost_usd"),
        (
            state(p95=2500.0),
            CFG.model_copy(update={"max_p95_latency_ms": 2000.0}),
            "max_p95_latency_ms",
        ),
        (state(errors=200), CFG, "max_error_rate"),  # 10 % > 5 % default
    ],
)
def test_each_guard_blocks_promotion_on_its_own(
    the_state: PromptState, config: PromotionConfig, guard: str
) -> None:
    check = check_promotion(the_state, "v2", config, rng(), always_compute_p=True)
    assert len(check.blocked_by) == 1, check.blocked_by
    assert guard in check.blocked_by[0]
    assert decide(the_state, config, rng()) is None


def test_an_unknown_constrained_figure_blocks_promotion() -> None:
    s = PromptState.of(
        "v1", [arm("v1", 8000, 0.5), ArmSummary("v2", 2000, 1120, 1120, executions=2000)]
    )
    check = check_promotion(s, "v2", CFG.model_copy(update={"max_p95_latency_ms": 2000.0}), rng())
    assert check.blocked_by == ("p95 latency unknown ms > max_p95_latency_ms 2000.0",)


def test_several_challengers_share_alpha() -> None:
    # p ~ 0.032: promoted alone, not when a second challenger halves the level.
    alone = state(0.54)
    assert decide(alone, CFG, rng()) is not None
    crowded = PromptState.of("v1", [*alone.arms.values(), arm("v3", 2000, 0.50)])
    check = check_promotion(crowded, "v2", CFG, rng())
    assert check.alpha == pytest.approx(0.025)
    assert not check.passes
    d = decide(crowded, CFG, rng())
    assert d is not None and d.kind == "retire" and d.variant == "v3"  # v2 dominates it


def test_the_best_of_several_qualifying_challengers_is_promoted() -> None:
    s = PromptState.of("v1", [arm("v1", 8000, 0.5), arm("v2", 3000, 0.56), arm("v3", 3000, 0.58)])
    d = decide(s, CFG, rng())
    assert d is not None and d.variant == "v3"


def test_paused_prompts_are_not_promoted_or_retired() -> None:
    s = PromptState.of("v1", list(state().arms.values()), paused=True)
    assert decide(s, CFG, rng()) is None


def test_same_seed_same_decision() -> None:
    s = state(0.55)
    assert decide(s, CFG, rng(42)) == decide(s, CFG, rng(42))
    d = decide(s, CFG, rng(42))
    assert d is not None
    assert d.to_event("p", 17).event_id == d.to_event("p", 17).event_id


# --------------------------------------------------------------------------- probation


def on_probation(since_mean: float, since_n: int, *, errors: int = 0) -> PromptState:
    baseline = arm("v1", 8000, 0.50)
    since = arm("v2", since_n, since_mean, errors=errors)
    # Before promotion v2 had 2,000 rewards at 0.56; since then `since`.
    whole = ArmSummary(
        "v2",
        2000 + since.n,
        1120 + since.reward_sum,
        1120 + since.reward_sq_sum,
        2000 + since.executions,
        since.errors,
        0.0,
    )
    probation = Probation(champion="v2", previous="v1", baseline=baseline, since=since)
    return PromptState.of("v2", [baseline, whole], probation=probation)


def test_a_significant_regression_during_probation_rolls_back() -> None:
    d = decide(on_probation(0.38, 300), CFG, rng())
    assert d is not None and d.kind == "rollback"
    assert (d.variant, d.counterpart) == ("v2", "v1")
    assert d.evidence.lift is not None and d.evidence.lift < 0
    assert d.evidence.p_value is not None and d.evidence.p_value <= CFG.rollback_alpha
    assert d.evidence.challenger.n == 300  # the data since the promotion
    assert "regression" in d.evidence.rule


def test_a_healthy_new_champion_is_kept_and_no_promotion_happens_on_probation() -> None:
    s = on_probation(0.55, 150)
    s = PromptState.of("v2", [*s.arms.values(), arm("v3", 3000, 0.70)], probation=s.probation)
    assert s.probation_active(CFG)
    d = decide(s, CFG, rng())
    assert d is None  # v3 would be promoted, but probation comes first


def test_an_error_rate_breach_rolls_back_even_when_paused() -> None:
    s = on_probation(0.52, 200, errors=40)  # 20 % errors against a 5 % limit
    s = PromptState.of("v2", list(s.arms.values()), probation=s.probation, paused=True)
    d = decide(s, CFG, rng())
    assert d is not None and d.kind == "rollback" and "error rate" in d.evidence.rule


def test_probation_ends_after_its_samples() -> None:
    s = on_probation(0.38, probation_steps(CFG) + 1)
    assert not s.probation_active(CFG)
    # Past the probation a regression is no longer rolled back: the previous champion,
    # now an ordinary challenger, has to win the champion's place back by a promotion.
    after = decide(s, CFG, rng())
    assert after is not None and (after.kind, after.variant) == ("promote", "v1")


def test_error_rate_test_is_always_valid_and_sensitive() -> None:
    assert error_rate_breach(0, 100, 0.05) == 1.0
    assert error_rate_breach(5, 100, 0.05) > 0.5  # right at the limit: no evidence
    assert error_rate_breach(30, 200, 0.05) < 1e-4
    # A/A at the limit, checked after every call: the false alarm rate stays below alpha.
    gen = rng(5)
    errors = (gen.random((300, 600)) < 0.05).cumsum(axis=1)
    alarms = sum(
        any(error_rate_breach(int(e), m + 1, 0.05) <= 0.05 for m, e in enumerate(row))
        for row in errors[:, ::1]
    )
    assert alarms / 300 <= 0.05


# --------------------------------------------------------------------------- retirement


def test_a_hopeless_challenger_is_retired_after_min_samples_only() -> None:
    d = decide(state(0.40, 300), CFG, rng())
    assert d is not None and d.kind == "retire" and d.variant == "v2"
    assert d.evidence.details["p_best"]["v2"] < CFG.retire_below
    assert decide(state(0.40, 150), CFG, rng()) is None  # below min_samples


def test_the_rollback_target_is_not_retired_during_probation() -> None:
    s = on_probation(0.56, 100)
    assert s.probation is not None
    s = PromptState.of(
        "v2",
        [arm("v1", 8000, 0.45), *[a for a in s.arms.values() if a.variant == "v2"]],
        probation=Probation("v2", "v1", arm("v1", 8000, 0.45), s.probation.since),
    )
    assert decide(s, CFG, rng()) is None


def exact_p_beats(a: ArmSummary, b: ArmSummary) -> float:
    pa, pb = a.posterior, b.posterior
    lo, hi = stats.beta.ppf([1e-12, 1 - 1e-12], pb.alpha, pb.beta)
    f = lambda y: stats.beta.pdf(y, pb.alpha, pb.beta) * stats.beta.sf(y, pa.alpha, pa.beta)  # noqa: E731
    return float(integrate.quad(f, lo, hi, limit=200)[0])


@pytest.mark.parametrize("n_c", [30, 200, 2000])
@pytest.mark.parametrize("n_h", [200, 50_000])
@pytest.mark.parametrize("p_h", [0.02, 0.5, 0.98])
def test_the_normal_screen_never_skips_an_arm_that_could_be_retired(
    n_c: int, n_h: int, p_h: float
) -> None:
    # Walk the challenger's mean down; wherever the exact P(c beats h) is < 5 %, the
    # screen (margin 1 z) must ask for the Monte Carlo.
    for p_c in np.linspace(0.001, 0.999, 60):
        s = PromptState.of("h", [arm("h", n_h, p_h), arm("c", n_c, float(p_c))])
        exact = exact_p_beats(s.arms["c"], s.arms["h"])
        if exact < 0.05:
            assert retire_screen(s, "c", 0.05), (n_c, n_h, p_h, p_c, exact)
        if exact > special.ndtr(special.ndtri(0.05) + 3.0):
            assert not retire_screen(s, "c", 0.05)  # and it does skip the hopeless-free cases


# --------------------------------------------------------------------------- events and helpers


def test_decisions_become_events_with_deterministic_ids() -> None:
    promote = decide(state(), CFG, rng())
    assert promote is not None
    event = promote.to_event("greet", 99)
    assert isinstance(event, VariantPromoted)
    assert event.event_id == deterministic_event_id("greet", "promote", 99, "v2")
    assert (event.variant, event.previous_champion, event.trigger_sequence) == ("v2", "v1", 99)
    assert event.evidence == promote.evidence
    rollback = decide(on_probation(0.38, 300), CFG, rng())
    assert isinstance(rollback, Decision) and isinstance(
        rollback.to_event("greet", 100), VariantRolledBack
    )
    retire = decide(state(0.40, 300), CFG, rng())
    assert isinstance(retire, Decision)
    retired = retire.to_event("greet", 101)
    assert isinstance(retired, VariantRetired) and retired.reason.startswith("P(best)=")


def test_a_reward_during_probation_counts_for_the_new_champion() -> None:
    s = on_probation(0.55, 10)
    before = s.probation
    after = s.with_reward("v2", 1.0).with_execution("v2")
    assert before is not None and after.probation is not None
    assert after.probation.since.n == before.since.n + 1
    assert after.arms["v2"].n == s.arms["v2"].n + 1


def test_lift_with_interval_and_recommendations() -> None:
    lift, ci = lift_with_interval(arm("v2", 2000, 0.56), arm("v1", 8000, 0.50))
    assert lift == pytest.approx(0.06) and ci.low > 0
    assert recommendation(state(), CFG, rng()).startswith("promote v2 (P=1.00, lift +0.060 [")
    assert recommendation(state(0.40, 300), CFG, rng()).startswith("retire v2")
    assert recommendation(state(0.52, 100), CFG, rng()) == "insufficient data (v2 100/200)"
    assert recommendation(state(0.52, 1000), CFG, rng()).startswith("keep exploring (leader v2: P=")
    assert recommendation(on_probation(0.5, 10), CFG, rng()).startswith(
        f"probation: v2 10/{probation_steps(CFG)}"
    )


def test_invalid_states_are_refused() -> None:
    with pytest.raises(ValueError):
        PromptState(champion="v9", arms={"v1": arm("v1", 10, 0.5)}, statuses={"v1": "champion"})
    with pytest.raises(ValueError):
        PromptState(
            champion="v1",
            arms={"v1": arm("v1", 10, 0.5), "v2": arm("v2", 10, 0.5)},
            statuses={"v1": "champion", "v2": "champion"},
        )
