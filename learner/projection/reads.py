"""What a batch reads before it applies anything: the rows its events refer to.

One pass over the batch collects what it will need from earlier batches, then a few
chunked ``IN (...)`` queries load it into the :class:`~learner.projection.batch.Batch`:
the stored executions that feedback in the batch refers to (and executions the batch
may deliver twice) and which of them have a production example, the stored feedback that arrived before executions now arriving,
the committed counters a promotion's baseline is taken from, and the variable-value
rows of the hours the batch adds to. Reading it up front keeps the handlers free of
I/O, and one query per chunk instead of one per event keeps replay fast.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select

from promptlab.events.bus import Delivery
from promptlab.events.models import ExecutionCompleted, FeedbackReceived, VariantPromoted
from promptlab.learner.projection.batch import Batch, Execution, chunks, event_ms
from promptlab.learner.projection.variables import HOUR_MS
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.schema import AGGREGATE_COLUMNS
from promptlab.learner.storage.view import window_minutes


async def prefetch(b: Batch, fresh: Iterable[Delivery]) -> None:
    """Load the executions and early feedback this batch's events refer to."""
    exec_ids: set[str] = set()
    arriving: set[str] = set()
    rated: set[str] = set()
    promoted: set[str] = set()
    value_hours: set[tuple[str, int]] = set()
    for d in fresh:
        ev = d.event
        if isinstance(ev, VariantPromoted):
            promoted.add(ev.prompt_id)
        elif isinstance(ev, ExecutionCompleted):
            exec_ids.add(ev.execution_id)
            arriving.add(ev.execution_id)
            if ev.variable_values and ev.prompt_id is not None:
                value_hours.add((ev.prompt_id, event_ms(ev) // HOUR_MS))
        elif isinstance(ev, FeedbackReceived):
            exec_ids.add(ev.execution_id)
            rated.add(ev.execution_id)
    for chunk in chunks(sorted(exec_ids)):
        rows = await b.conn.execute(_SELECT_EXECUTIONS, {"ids": chunk})
        for row in rows:
            exec_id, prompt_id, variant, occurred, cost, latency = row[:6]
            fb_seq, value, reward, fallback_from, probability = row[6:]
            b.execs[exec_id] = Execution(
                prompt_id,
                variant,
                int(occurred),
                float(cost),
                float(latency),
                None if fb_seq is None else int(fb_seq),
                None if value is None else float(value),
                None if reward is None else float(reward),
                fallback_from,
                probability=None if probability is None else float(probability),
            )
    # Only feedback changes a stored example (an execution delivered again adds none).
    for chunk in chunks(sorted(rated)):
        b.example_ids.update(
            r[0] for r in await b.conn.execute(_SELECT_EXAMPLE_IDS, {"ids": chunk})
        )
    for chunk in chunks(sorted(arriving - b.execs.keys())):
        for exec_id, seq, name, value, boolean, ms, text, comment in await b.conn.execute(
            _SELECT_PENDING, {"ids": chunk}
        ):
            raw: bool | float = bool(value) if boolean else float(value)
            b.pending_db.setdefault(exec_id, []).append(
                (int(seq), name, raw, int(ms), text, comment)
            )
    for prompt_id in sorted(promoted):
        await _prefetch_totals(b, prompt_id)
    await b.values.prefetch(b.conn, value_hours)


async def _prefetch_totals(b: Batch, prompt_id: str) -> None:
    """Committed counters of a prompt's arms, for the baseline of a promotion in
    this batch: all time, or the minute buckets that may fall in the window."""
    minutes = window_minutes(b.p.promotion(prompt_id).evaluation_window)
    if minutes is None:
        rows = await b.conn.execute(select(t.arm_stats).where(t.arm_stats.c.prompt_id == prompt_id))
        for row in rows:
            m = row._mapping
            b.base_arms[(prompt_id, m["variant"])] = [int(m[c]) for c in AGGREGATE_COLUMNS]
        return
    known = b.state.prompts.get(prompt_id)
    # "now" only moves forward within the batch, so the window starts here or later.
    earliest = (known.last_event_ms if known else 0) // 60_000 - minutes + 1
    mb = t.minute_buckets
    rows = await b.conn.execute(
        select(mb).where(mb.c.prompt_id == prompt_id, mb.c.minute >= earliest)
    )
    for row in rows:
        m = row._mapping
        b.base_minutes.setdefault((prompt_id, m["variant"]), []).append(
            (int(m["minute"]), [int(m[c]) for c in AGGREGATE_COLUMNS])
        )


_e, _pf = t.executions, t.pending_feedback
_SELECT_EXECUTIONS = select(
    _e.c.execution_id,
    _e.c.prompt_id,
    _e.c.variant,
    _e.c.occurred_ms,
    _e.c.cost_usd,
    _e.c.latency_ms,
    _e.c.feedback_sequence,
    _e.c.feedback_value,
    _e.c.reward,
    _e.c.fallback_from,
    _e.c.probability,
).where(_e.c.execution_id.in_(bindparam("ids", expanding=True)))
_SELECT_PENDING = (
    select(
        _pf.c.execution_id,
        _pf.c.sequence,
        _pf.c.name,
        _pf.c.value,
        _pf.c.boolean,
        _pf.c.occurred_ms,
        _pf.c.text,
        _pf.c.comment,
    )
    .where(_pf.c.execution_id.in_(bindparam("ids", expanding=True)))
    .order_by(_pf.c.sequence)
)
_SELECT_EXAMPLE_IDS = select(t.examples.c.id).where(
    t.examples.c.id.in_(bindparam("ids", expanding=True))
)
