"""Decisions and commands: how a prompt's champion, probation and running tests change.

A decision event (promotion, rollback, retirement, pause, lifecycle change, rejection)
changes the prompt's state when it is *projected* from the stream, not when the learner
decided it, and adds a row to the decision log (:mod:`learner.projection.decision_log`).
A decision this learner published is then no longer in flight (its outbox row goes). An
operator command is judged here, at its own position in the stream
(:mod:`learner.projection.commands`), and its answer written to the outbox.

Each change of champion starts a new epoch of same-period tests (:func:`start_tests`);
a promotion records its baseline (:func:`totals_now`) and, when the prompt's config asks
for one, a probation, which ends (:func:`end_probation`) after its length of rewarded
calls, at a later promotion, or at a rollback.
"""

from __future__ import annotations

from typing import Any

from promptlab.events.models import (
    ExplorationPaused,
    ExplorationResumed,
    VariantLifecycleChanged,
    VariantPromoted,
    VariantRetired,
    VariantRolledBack,
    encode,
)
from promptlab.learner.projection.batch import N_AGG, Batch, named
from promptlab.learner.projection.commands import Command, carry_out
from promptlab.learner.projection.decision_log import decision_record
from promptlab.learner.projection.evidence import start_test, stop_test
from promptlab.learner.projection.rows import PromptRow, new_test
from promptlab.learner.stats.etest import probation_steps
from promptlab.learner.statuses import (
    StatusChanges,
    after_probation,
    after_promotion,
    after_retirement,
    after_rollback,
)
from promptlab.learner.storage.view import window_minutes


def decision(b: Batch, seq: int, ev: Any) -> None:
    """Apply a decision event (or log a rejection, or one overtaken by an earlier one)."""
    prompt = b.prompt(ev.prompt_id, seq)
    if b.p.in_flight.pop(ev.event_id, None) is not None:
        b.outbox_done.append(ev.event_id)
    b.result.decisions.append(ev)
    b.decision_rows.append(decision_record(seq, ev))
    match ev:
        case VariantPromoted() if ev.variant != prompt.champion:
            config = b.p.promotion(ev.prompt_id)
            on_probation = probation_steps(config) > 0
            if prompt.probation_variant is not None:
                end_probation(b, ev.prompt_id, prompt)  # an operator's promotion
            changes = after_promotion(
                prompt.champion, ev.variant, probation=on_probation, holds_back=config.holds_back
            )
            baseline = (
                {}
                if prompt.champion is None
                else totals_now(b, ev.prompt_id, prompt.champion, prompt.last_event_ms)
            )
            prompt.start_probation(baseline)
            prompt.previous_champion = prompt.champion
            prompt.champion = ev.variant
            prompt.champion_explicit = True
            prompt.last_decision_sequence = seq
            prompt.probation_steps = 0
            prompt.probation_test = new_test()
            prompt.probation_variant = ev.variant if on_probation else None
            set_statuses(b, ev.prompt_id, changes)
            start_tests(b, ev.prompt_id, seq, restart=True)
        case VariantRolledBack() if ev.variant == prompt.champion:
            set_statuses(
                b,
                ev.prompt_id,
                after_rollback(ev.variant, ev.restored, automatic=ev.reason == "auto"),
            )
            prompt.champion = ev.restored
            prompt.previous_champion = None
            prompt.probation_variant = None
            prompt.probation_steps = 0
            prompt.clear_probation()
            prompt.last_decision_sequence = seq
            start_tests(b, ev.prompt_id, seq, restart=True)
        case VariantRetired() if ev.variant != prompt.champion:
            set_statuses(b, ev.prompt_id, after_retirement(ev.variant))
            prompt.last_decision_sequence = seq
            start_tests(b, ev.prompt_id, seq)
        case ExplorationPaused():
            prompt.paused = True
        case ExplorationResumed():
            prompt.paused = False
        case VariantLifecycleChanged():
            row = b.state.variants.get((ev.prompt_id, ev.variant))
            if row is not None and row.lifecycle != ev.status:
                row.lifecycle = ev.status
                b.dirty_variants.add((ev.prompt_id, ev.variant))
                prompt.last_decision_sequence = seq
                start_tests(b, ev.prompt_id, seq)
        case _:
            pass  # rejections, and decisions overtaken by an earlier one: logged only


def command(b: Batch, seq: int, ev: Command) -> None:
    """Judge an operator command now; its answer goes to the outbox (unless replaying)."""
    answer = carry_out(ev, b.state)
    if not b.p.write_outbox or answer.event_id in b.p.in_flight:
        return
    b.p.in_flight[answer.event_id] = ev.prompt_id
    b.outbox_new.append(
        {"event_id": answer.event_id, "prompt_id": ev.prompt_id, "data": encode(answer)}
    )
    b.result.outbox.append(answer)


def end_probation(b: Batch, prompt_id: str, prompt: PromptRow) -> None:
    """Probation served without a rollback: a full champion from here on, and the
    holdback an ordinary challenger again."""
    assert prompt.probation_variant is not None
    previous = prompt.previous_champion
    row = None if previous is None else b.state.variants.get((prompt_id, previous))
    set_statuses(
        b,
        prompt_id,
        after_probation(prompt.probation_variant, previous, None if row is None else row.status),
    )
    prompt.probation_variant = None
    start_tests(b, prompt_id, prompt.last_sequence)


def set_statuses(b: Batch, prompt_id: str, changes: StatusChanges) -> None:
    """Write the statuses a decision moved (:mod:`learner.statuses` decides them)."""
    for variant, status in changes.items():
        b.set_status(prompt_id, variant, status)


def start_tests(b: Batch, prompt_id: str, seq: int, *, restart: bool = False) -> None:
    """Give every live challenger without a running test a new one against the
    champion (``restart``: every live challenger, as a new champion starts a new
    epoch), numbered by the prompt's count of tests started (e-LOND's ``j``), in
    registration order. The scenario simulator starts tests at the same moments."""
    prompt = b.state.prompts[prompt_id]
    for row in b.state.variants_of(prompt_id).values():
        live = row.status == "challenger" and row.lifecycle == "active"
        if not live:
            if row.test_number:
                stop_test(row)
                b.dirty_variants.add((prompt_id, row.variant))
            continue
        if row.test_number and not restart:
            continue
        prompt.tests_started += 1
        start_test(row, prompt.tests_started, seq)
        b.dirty_variants.add((prompt_id, row.variant))


def totals_now(b: Batch, prompt_id: str, variant: str, last_event_ms: int) -> dict[str, int]:
    """An arm's counters at this point of the stream (committed + this batch so far),
    over the prompt's evaluation window like :func:`learner.storage.view.load_view`."""
    acc = [0] * N_AGG
    minutes = window_minutes(b.p.promotion(prompt_id).evaluation_window)
    if minutes is None:
        parts = [b.base_arms.get((prompt_id, variant)), b.arms.get((prompt_id, variant))]
    else:
        since = last_event_ms // 60_000 - minutes + 1
        parts = [c for m, c in b.base_minutes.get((prompt_id, variant), []) if m >= since]
        parts += [
            c
            for (p, v, m), c in b.minutes.items()
            if p == prompt_id and v == variant and m >= since
        ]
    for part in parts:
        if part is not None:
            for i, value in enumerate(part):
                acc[i] += value
    return named(acc)
