"""Feedback and rewards: one rating of a known execution into its arm's statistics.

Feedback is judged by the prompt's reward rule (:mod:`learner.projection.reward`): a
name the rule does not count is ignored, a value off its scale rejected and counted.
A counted value becomes a reward (with the rule's cost and latency weights) that adds
to the arm's all-time counters and its minute bucket. A repeated rating of the same
call follows ``feedback_repeat``: ``last`` takes the old reward out first, ``first``
ignores the new one; a call weighs once either way.

A first rating is also one step of the prompt's running tests, and of a probation's
test while one runs (:func:`learner.projection.evidence.step_call`); a rating of the
champion since its promotion adds to the probation's counters. After its length of
rewarded calls the probation ends
(:func:`~learner.projection.handlers.decisions.end_probation`).

Feedback whose execution has not arrived waits in the batch (then in
``pending_feedback``); :mod:`~learner.projection.handlers.executions` joins it when the
execution comes. A counted reward also rates the call's production example, and a
correction (``demonstration``) replaces its answer
(:mod:`~learner.projection.handlers.examples`); neither is otherwise a reward.
"""

from __future__ import annotations

import logging

from promptlab.events.kinds import DEMONSTRATION
from promptlab.events.models import FeedbackReceived
from promptlab.learner.projection.batch import (
    POSITIVE,
    REWARD,
    REWARD_SQ,
    REWARDED,
    Batch,
    Execution,
    event_ms,
)
from promptlab.learner.projection.evidence import step_call
from promptlab.learner.projection.handlers.decisions import end_probation
from promptlab.learner.projection.handlers.examples import correct, rate
from promptlab.learner.projection.reward import raw_value
from promptlab.learner.stats.etest import probation_steps
from promptlab.learner.storage.schema import MICRO

log = logging.getLogger(__name__)


def feedback_received(b: Batch, seq: int, ev: FeedbackReceived) -> None:
    """Judge feedback now, or keep it until its execution arrives."""
    raw = raw_value(ev.value)
    if raw is None:
        log.warning("ignoring NaN feedback %r for %s at sequence %d", ev.name, ev.execution_id, seq)
        b.count("feedback_rejected")
        return
    now = b.tick(event_ms(ev))
    ex = b.execs.get(ev.execution_id)
    # Past retention an execution's row is deleted at the end of a batch, and whether
    # that batch came before this feedback depends on batch sizes: so a call older than
    # the retention counts as unknown either way (the feedback waits, then is dropped).
    if ex is not None and b.p.retention_ms > 0 and ex.occurred_ms < now - b.p.retention_ms:
        ex = None
    if ex is None:
        b.pending_new.setdefault(ev.execution_id, []).append(
            (seq, ev.name, raw, event_ms(ev), ev.text, ev.comment)
        )
        return
    judge(b, ex, ev.execution_id, seq, ev.name, raw, seq, text=ev.text, comment=ev.comment)


def judge(
    b: Batch,
    ex: Execution,
    execution_id: str,
    fb_seq: int,
    name: str,
    raw: bool | float,
    seq: int,
    *,
    text: str | None = None,
    comment: str | None = None,
) -> None:
    """One feedback for a known execution: reward it, replace its reward, or not; a
    correction (``demonstration``) goes to the call's production example instead."""
    if ex.prompt_id is None or ex.variant is None:
        return  # unrouted calls have no arm to reward
    if name == DEMONSTRATION:
        if text is not None:
            correct(b, ex, execution_id, text, comment)
        return  # never a reward, whatever the prompt's rule accepts
    if ex.fallback_from is not None:
        return  # the champion answered for a failed challenger: evidence of neither
    rule = b.p.rule(ex.prompt_id)
    if not rule.accepts(name):
        return
    value = rule.normalise(raw)
    if value is None:
        log.warning(
            "feedback %r = %r for %s is off the reward scale %s; not counted",
            name,
            raw,
            execution_id,
            rule.scale or (0, 1),
        )
        b.count("feedback_rejected")
        return
    if ex.rewarded:
        if b.p.feedback_repeat == "first":
            b.count("feedback_ignored")
            return
        _remove_reward(b, ex)
        b.count("feedback_replaced")
        add_reward(b, ex, execution_id, fb_seq, value, seq, replacing=True)
        rate(b, execution_id, value, comment)
        return
    add_reward(b, ex, execution_id, fb_seq, value, seq)
    rate(b, execution_id, value, comment)


def _remove_reward(b: Batch, ex: Execution) -> None:
    """Take an execution's current reward out of its arm's counters."""
    assert ex.prompt_id is not None and ex.variant is not None
    old_value, old_reward = ex.value or 0.0, ex.reward or 0.0
    for acc in (
        b.arm(ex.prompt_id, ex.variant),
        b.minute(ex.prompt_id, ex.variant, ex.occurred_ms // 60_000),
    ):
        acc[REWARDED] -= 1
        acc[POSITIVE] -= 1 if old_value >= 0.5 else 0
        acc[REWARD] -= round(old_reward * MICRO)
        acc[REWARD_SQ] -= round(old_reward * old_reward * MICRO)


def add_reward(
    b: Batch,
    ex: Execution,
    execution_id: str,
    fb_seq: int,
    value: float,
    seq: int,
    *,
    replacing: bool = False,
) -> None:
    """Count ``value`` (0..1) as the execution's reward, in its arm and (a first rating)
    in the prompt's tests and probation."""
    assert ex.prompt_id is not None and ex.variant is not None
    reward = b.p.rule(ex.prompt_id).reward(value, ex.cost_usd, ex.latency_ms)
    ex.feedback_sequence, ex.value, ex.reward = fb_seq, value, reward
    if ex.new_row is not None:
        ex.new_row.update(feedback_sequence=fb_seq, feedback_value=value, reward=reward)
    else:
        b.reward_updates.append(
            {"b_id": execution_id, "b_seq": fb_seq, "b_value": value, "b_reward": reward}
        )
    micro = round(reward * MICRO)
    sq = round(reward * reward * MICRO)
    positive = 1 if value >= 0.5 else 0
    for acc in (
        b.arm(ex.prompt_id, ex.variant),
        b.minute(ex.prompt_id, ex.variant, ex.occurred_ms // 60_000),
    ):
        acc[REWARDED] += 1
        acc[POSITIVE] += positive
        acc[REWARD] += micro
        acc[REWARD_SQ] += sq
    prompt = b.prompt(ex.prompt_id, seq)
    if replacing:
        return  # a probation record keeps the first rating (see learner.projection.reward)
    if prompt.previous_champion is not None and ex.variant == prompt.champion:
        # Rewards since the promotion (counted until the next promotion or a
        # rollback; the policy decides how long it judges them).
        prompt.probation_rewarded += 1
        prompt.probation_reward_micro += micro
        prompt.probation_reward_sq_micro += sq
    config = b.p.promotion(ex.prompt_id)
    length = probation_steps(config)
    variants = b.state.variants_of(ex.prompt_id)
    for name, row in variants.items():
        if row.test_number:
            b.dirty_variants.add((ex.prompt_id, name))
    step_call(
        prompt,
        variants.values(),
        ex.variant,
        reward,
        ex.probability,
        config,
        b.p.routing(ex.prompt_id),
        probation_length=length,
    )
    if prompt.probation_variant is not None:
        # Every rewarded call of the prompt is a step of the probation's test.
        prompt.probation_steps += 1
        if prompt.probation_steps >= length:
            end_probation(b, ex.prompt_id, prompt)
