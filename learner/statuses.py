"""How a decision moves variant statuses: the one rule.

The projection applies every decision event with these functions
(:mod:`learner.projection.handlers.decisions`), whoever decided it (the learner's policy
or an operator's command). Each returns the statuses that change, as ``{variant: status}``;
the caller writes them. Nothing else in the product assigns a status after a decision.
"""

from __future__ import annotations

from promptlab.events.kinds import VariantStatus

StatusChanges = dict[str, VariantStatus]


def after_promotion(
    previous: str | None, winner: str, *, probation: bool, holds_back: bool
) -> StatusChanges:
    """``winner`` becomes champion (``probation`` while a probation runs); the previous
    champion keeps a holdback share during the probation when the config holds one back,
    and is an ordinary challenger otherwise."""
    changes: StatusChanges = {}
    if previous is not None and previous != winner:
        changes[previous] = "holdback" if probation and holds_back else "challenger"
    changes[winner] = "probation" if probation else "champion"
    return changes


def after_rollback(demoted: str, restored: str, *, automatic: bool) -> StatusChanges:
    """The previous champion is champion again. An automatic rollback (the policy found a
    significant regression or a broken guardrail) retires the demoted variant; an
    operator's rollback leaves it a challenger, to compete again."""
    return {demoted: "retired" if automatic else "challenger", restored: "champion"}


def after_retirement(variant: str) -> StatusChanges:
    """A retired challenger gets no more traffic."""
    return {variant: "retired"}


def after_probation(
    champion: str, previous: str | None, previous_status: VariantStatus | None
) -> StatusChanges:
    """A probation served without a rollback: a full champion from here on, and the
    holdback an ordinary challenger again (a variant retired meanwhile stays retired)."""
    changes: StatusChanges = {champion: "champion"}
    if previous is not None and previous_status == "holdback":
        changes[previous] = "challenger"
    return changes
