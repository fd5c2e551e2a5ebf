"""The one rule for status changes after a decision (learner.statuses), and the
projection applying it: an automatic rollback retires the demoted variant, an operator's
rollback leaves it a challenger."""

from __future__ import annotations

from promptlab.learner.statuses import (
    after_probation,
    after_promotion,
    after_retirement,
    after_rollback,
)


def test_a_promotion_with_probation_holds_the_previous_champion_back() -> None:
    assert after_promotion("v1", "v2", probation=True, holds_back=True) == {
        "v1": "holdback",
        "v2": "probation",
    }
    assert after_promotion("v1", "v2", probation=True, holds_back=False) == {
        "v1": "challenger",
        "v2": "probation",
    }
    assert after_promotion("v1", "v2", probation=False, holds_back=True) == {
        "v1": "challenger",
        "v2": "champion",
    }
    assert after_promotion(None, "v1", probation=False, holds_back=True) == {"v1": "champion"}


def test_who_rolled_back_decides_whether_the_demoted_variant_is_retired() -> None:
    assert after_rollback("v2", "v1", automatic=True) == {"v2": "retired", "v1": "champion"}
    assert after_rollback("v2", "v1", automatic=False) == {"v2": "challenger", "v1": "champion"}


def test_retirement_and_the_end_of_a_probation() -> None:
    assert after_retirement("v3") == {"v3": "retired"}
    assert after_probation("v2", "v1", "holdback") == {"v2": "champion", "v1": "challenger"}
    assert after_probation("v2", "v1", "retired") == {"v2": "champion"}
    assert after_probation("v2", None, None) == {"v2": "champion"}
