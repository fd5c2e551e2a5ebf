"""Same-period evidence, kept up to date call by call.

Every rewarded call of a prompt is one step of each of its running tests
(:mod:`learner.stats.etest`): each live challenger's promotion test against the
champion and its futility twin, and during a probation the test of the previous
champion (the holdback) against the new one. The projection steps them here, in stream
order, in the same transaction as the counters, so a decision reads a handful of
numbers instead of every reward the prompt ever had (re-reading them cost 0.9 s per
decision at 100,000 rewarded calls, and grew with every call). Plain float arithmetic in
a fixed order: a replay, in any batch sizes, reaches bit-identical states.

The steps are the ones ``tests/support/etest_reference.py`` computes from the stored rewards (the
first rating of a call: a replaced rating changes the counters, not a bet already
made); ``tests/learner/test_evidence.py`` checks the two agree.
"""

from __future__ import annotations

from collections.abc import Iterable

from promptlab.learner.projection.rows import PromptRow, VariantRow, new_test
from promptlab.learner.stats.etest import TEST_FIELDS, advance
from promptlab.prompts.config import PromotionConfig
from promptlab.prompts.routing import least_share


def live_challengers(variants: Iterable[VariantRow]) -> list[VariantRow]:
    """The challengers the router gives traffic (and the tests run for)."""
    return [v for v in variants if v.status == "challenger" and v.lifecycle == "active"]


def start_test(row: VariantRow, number: int, sequence: int) -> None:
    """A challenger's new test: numbered ``number``, counting steps after ``sequence``."""
    row.test_number, row.test_start = number, sequence
    row.test_state = new_test(2)


def stop_test(row: VariantRow) -> None:
    row.test_number = row.test_start = 0
    row.test_state = new_test(2)


def step_call(
    prompt: PromptRow,
    variants: Iterable[VariantRow],
    variant: str,
    reward: float,
    probability: float | None,
    config: PromotionConfig,
    routing: tuple[float, float],
    *,
    probation_length: int,
) -> None:
    """One rewarded call of ``variant`` (routed with ``probability``, None when not
    logged): step every running test, then add the reward to the baseline.

    ``routing`` is the prompt's ``(exploration_cap, exploration_floor)``: with ``k``
    live challengers every live arm's share is at least ``min(floor, cap / (2 k))``,
    which bounds a step's loss (:func:`prompts.routing.least_share`,
    :func:`learner.stats.etest.step_bounds`).
    """
    rows = list(variants)
    baseline = (0.5 + prompt.base_sum) / (1.0 + prompt.base_n)
    spread = baseline if baseline > 0.5 else 1.0 - baseline
    cap, floor = routing
    live = live_challengers(rows)
    least = least_share(floor, cap, len(live))
    champion = prompt.champion
    centred = (
        None if probability is None or probability <= 0.0 else (reward - baseline) / probability
    )
    if centred is not None:
        bound = spread / least
        for row in live:
            if not row.test_number:
                continue
            x = centred if variant == row.variant else -centred if variant == champion else 0.0
            state = row.test_state
            promotion, futility = state[:TEST_FIELDS], state[TEST_FIELDS:]
            advance(promotion, x, config.min_lift, bound)
            advance(futility, -x, -config.min_lift, bound)
            row.test_state = promotion + futility
    previous = prompt.previous_champion
    if prompt.probation_variant is not None and previous is not None and config.holds_back:
        # Every rewarded call is a probation step; one without a logged probability
        # adds nothing (as the reference in tests/support/etest_reference.py).
        x = 0.0
        if centred is not None:
            x = centred if variant == previous else -centred if variant == champion else 0.0
        held = min(least, config.probation_holdback)
        if prompt.probation_steps < probation_length:
            advance(prompt.probation_test, x, 0.0, spread / held)
    prompt.base_n += 1
    prompt.base_sum += reward
