"""Executions: one model call into its arm's counters, and the feedback that came first.

An ``ExecutionCompleted`` adds a row to ``executions`` (kept for the feedback join and
analytics until ``retention_days``) and, when the call was routed to a variant, adds to
its arm: calls, errors, cost, tokens, latency, the latency histogram and the recorded
variable values (:mod:`learner.projection.variables`); a captured call's variables and
answer become its production example (:mod:`learner.projection.handlers.examples`). A routed challenger that failed
while the champion answered in its place counts as a reward of 0 for the challenger.
Offline trials (experiments, evolution) are not live evidence and are skipped, as is
the same execution published twice under two event ids.

Feedback can reach the stream before its execution. It waits (in the batch, or in
``pending_feedback`` from earlier batches) and is judged here when the execution
arrives, in sequence order, unless it waited longer than ``feedback_wait_s`` of event
time: then it is dropped and counted. Old pending rows and executions are deleted on
the same event clock by :mod:`learner.projection.writes`.
"""

from __future__ import annotations

from promptlab.events.models import ExecutionCompleted
from promptlab.learner.projection.batch import (
    COST,
    ERRORS,
    EXECUTIONS,
    LATENCY,
    TOKENS,
    Batch,
    Execution,
    event_ms,
)
from promptlab.learner.projection.handlers.examples import capture
from promptlab.learner.projection.handlers.feedback import add_reward, judge
from promptlab.learner.projection.handlers.registrations import arm_name
from promptlab.learner.projection.reward import finite
from promptlab.learner.projection.variables import HOUR_MS
from promptlab.learner.storage.schema import NANO
from promptlab.learner.storage.store import latency_bucket


def execution_completed(b: Batch, seq: int, ev: ExecutionCompleted) -> None:
    """Count a live call for its arm and join the feedback that waited for it."""
    if ev.source == "offline":  # an experiment's or evolution's trial: not live evidence
        return
    if ev.execution_id in b.execs:
        return  # the same execution published twice under two event ids
    occurred = event_ms(ev)
    b.tick(occurred)
    variant = ev.variant
    if ev.prompt_id is not None and variant is not None:
        variant = arm_name(b, ev.prompt_id, variant, ev.version)
    fallback_from = ev.routing.fallback_from if ev.routing is not None else None
    latency, cost = finite(ev.latency_ms), finite(ev.cost_usd)
    ttft = None if ev.ttft_ms is None else finite(ev.ttft_ms)
    row = {
        "execution_id": ev.execution_id,
        "sequence": seq,
        "prompt_id": ev.prompt_id,
        "variant": variant,
        "model": ev.model,
        "subject": ev.subject,
        "status": ev.status,
        "latency_ms": latency,
        "ttft_ms": ttft,
        "input_tokens": ev.input_tokens,
        "output_tokens": ev.output_tokens,
        "cost_usd": cost,
        "occurred_ms": occurred,
        "fallback_from": fallback_from,
        "feedback_sequence": None,
        "feedback_value": None,
        "reward": None,
        "probability": None if ev.routing is None else ev.routing.probability,
    }
    ex = Execution(
        ev.prompt_id,
        variant,
        occurred,
        cost,
        latency,
        fallback_from=fallback_from,
        new_row=row,
        probability=None if ev.routing is None else ev.routing.probability,
    )
    b.execs[ev.execution_id] = ex
    if ev.prompt_id is None or variant is None:
        return  # an unrouted passthrough call: kept for analytics, no arm
    capture(b, ev)  # before the early feedback below rates or corrects it
    prompt = b.prompt(ev.prompt_id, seq)
    if occurred > prompt.last_event_ms:
        prompt.last_event_ms = occurred
    errors = 1 if ev.status == "error" else 0
    cost_nano = round(cost * NANO)
    tokens = ev.input_tokens + ev.output_tokens
    latency_us = round(latency * 1000)
    for acc in (
        b.arm(ev.prompt_id, variant),
        b.minute(ev.prompt_id, variant, occurred // 60_000),
    ):
        acc[EXECUTIONS] += 1
        acc[ERRORS] += errors
        acc[COST] += cost_nano
        acc[TOKENS] += tokens
        acc[LATENCY] += latency_us
    if prompt.previous_champion is not None and variant == prompt.champion:
        prompt.probation_executions += 1
        prompt.probation_errors += errors
        prompt.probation_cost_nano += cost_nano
    hkey = (ev.prompt_id, variant, latency_bucket(latency))
    b.hist[hkey] = b.hist.get(hkey, 0) + 1
    if ev.variable_values:
        b.values.add(ev.prompt_id, variant, occurred // HOUR_MS, ev.variable_values)
    if errors and getattr(ev, "fell_back_to", None):
        # A routed challenger failed and the champion answered instead: the failure
        # is the challenger's, a reward of 0 in its statistics (not only an error),
        # so it is not judged on its successful calls alone.
        add_reward(b, ex, ev.execution_id, seq, 0.0, seq)
        b.count("fallback_failures")
    # Feedback that arrived first (earlier batches, then this one) joins now.
    early_db = b.pending_db.pop(ev.execution_id, None)
    early_new = b.pending_new.pop(ev.execution_id, None)
    if early_db or early_new:
        b.pending_delete.add(ev.execution_id)
        for fb_seq, name, raw, fb_ms, text, comment in sorted(
            (early_db or []) + (early_new or []), key=lambda item: item[0]
        ):
            if b.expired(fb_ms):
                b.count("feedback_dropped")
            else:
                judge(b, ex, ev.execution_id, fb_seq, name, raw, seq, text=text, comment=comment)
