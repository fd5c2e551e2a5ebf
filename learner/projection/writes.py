"""The write phase of a batch: everything it changed, and the new position, in its transaction.

:func:`write` runs once, after every event of the batch has been applied in memory,
inside the transaction :meth:`~learner.projection.transaction.Projection.apply` opened.
New rows go in with ``executemany``; aggregates are integer upserts that add
(``col = col + excluded.col``) and mirrored rows are upserts that replace, so totals do
not depend on where batch boundaries fall. Lists of ids are deleted in chunks. The
tracking position is the last statement: it commits with the writes or not at all.

Two clean-ups run here too, both on the stream's clock (the newest ``occurred_at``) so a
replay deletes exactly the same rows: stored feedback that waited longer than
``feedback_wait_s`` for its execution is dropped and counted, and raw executions older
than ``retention_days`` are deleted (their aggregates stay), with the production
examples of that age; each prompt's examples are capped at its ``max_examples``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, case, delete, func, select, update

from promptlab.learner.projection.batch import Batch, chunks, named
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.store import Store


async def write(b: Batch, position: int) -> None:
    """Write the batch's changes and ``position`` (the caller's transaction commits)."""
    conn, store = b.conn, b.p.store
    for prompt_id, name, archived in b.renames:
        for table in (
            t.arm_stats,
            t.minute_buckets,
            t.latency_histogram,
            t.variable_values,
            t.executions,
        ):
            await conn.execute(
                update(table)
                .where(table.c.prompt_id == prompt_id, table.c.variant == name)
                .values(variant=archived)
            )
    new_execs = [ex.new_row for ex in b.execs.values() if ex.new_row is not None]
    if new_execs:
        await conn.execute(t.executions.insert(), new_execs)
    if b.reward_updates:
        await conn.execute(_UPDATE_REWARD, b.reward_updates)
    for chunk in chunks(sorted(b.pending_delete)):
        await conn.execute(_DELETE_PENDING, {"ids": chunk})
    await _expire_pending(b)
    await _expire_executions(b)
    pending_rows = [
        {
            "sequence": s,
            "execution_id": exec_id,
            "name": n,
            "value": float(v),
            "boolean": isinstance(v, bool),
            "occurred_ms": ms,
            "text": text,
            "comment": comment,
        }
        for exec_id, items in b.pending_new.items()
        for s, n, v, ms, text, comment in items
        if not b.expired(ms)
    ]
    dropped_new = sum(len(items) for items in b.pending_new.values()) - len(pending_rows)
    if dropped_new:
        b.count("feedback_dropped", dropped_new)
    if pending_rows:
        await conn.execute(t.pending_feedback.insert(), pending_rows)
    await _add(
        b,
        t.arm_stats,
        [{"prompt_id": p, "variant": v, **named(acc)} for (p, v), acc in b.arms.items()],
    )
    await _add(
        b,
        t.minute_buckets,
        [
            {"prompt_id": p, "variant": v, "minute": m, **named(acc)}
            for (p, v, m), acc in b.minutes.items()
        ],
    )
    await _add(
        b,
        t.latency_histogram,
        [
            {"prompt_id": p, "variant": v, "bucket": bk, "count": n}
            for (p, v, bk), n in b.hist.items()
        ],
    )
    await _add(b, t.variable_values, b.values.rows())
    await _write_examples(b)
    await _replace(b, t.variants, [b.state.variants[k].to_row() for k in sorted(b.dirty_variants)])
    await _replace(
        b, t.prompt_state, [b.state.prompts[k].to_row() for k in sorted(b.dirty_prompts)]
    )
    if b.decision_rows:
        await conn.execute(t.decisions.insert(), b.decision_rows)
    await _write_versions(b)
    await _replace(
        b, t.prompt_definitions, [b.definition_rows[k] for k in sorted(b.definition_rows)]
    )
    await _replace(
        b,
        t.learner_counters,
        [{"name": n, "value": b.counters[n]} for n in sorted(b.dirty_counters)],
    )
    if b.outbox_new:
        await conn.execute(t.outbox.insert(), b.outbox_new)
    for chunk in chunks(b.outbox_done):
        await conn.execute(_DELETE_OUTBOX, {"ids": chunk})
    await conn.execute(
        b.p.statement(
            "replace",
            t.projection_position,
            lambda: _upsert_replace(store, t.projection_position),
        ),
        {"consumer": b.p.consumer, "sequence": position},
    )


async def _write_versions(b: Batch) -> None:
    """Record versions not seen before (a re-registration of one changes nothing)."""
    if not b.version_rows:
        return
    vv = t.variant_versions
    prompts = sorted({p for p, _, _ in b.version_rows})
    known = {
        (r.prompt_id, r.variant, r.version)
        for r in await b.conn.execute(
            select(vv.c.prompt_id, vv.c.variant, vv.c.version).where(vv.c.prompt_id.in_(prompts))
        )
    }
    rows = [row for key, row in sorted(b.version_rows.items()) if key not in known]
    if rows:
        await b.conn.execute(vv.insert(), rows)


async def _write_examples(b: Batch) -> None:
    """New production examples, changes to stored ones, then each prompt's cap.

    Rewards and corrections touch different rows than the new ones (a call's example
    is new in exactly one batch); a correction wins over any reward, so running the
    rewards first changes nothing, and corrections run in stream order (the last
    answer stays). The cap keeps a prompt's newest ``max_examples`` by
    ``(created_ms, id)``: the newest N of a union are the newest N of (the newest N of
    one part and the other), so the rows kept do not depend on batch boundaries.
    """
    conn = b.conn
    if b.examples:
        await conn.execute(t.examples.insert(), list(b.examples.values()))
    if b.example_rewards:
        await conn.execute(_RATE_EXAMPLE, b.example_rewards)
    if b.example_corrections:
        await conn.execute(_CORRECT_EXAMPLE, b.example_corrections)
    ex = t.examples
    for prompt_id in sorted({row["prompt_id"] for row in b.examples.values()}):
        cap = b.p.examples_cap(prompt_id)
        last = (
            await conn.execute(
                select(ex.c.created_ms, ex.c.id)
                .where(ex.c.prompt_id == prompt_id)
                .order_by(ex.c.created_ms.desc(), ex.c.id.desc())
                .limit(1)
                .offset(cap - 1)
            )
        ).first()
        if last is not None:
            created, kept = last
            await conn.execute(
                delete(ex).where(
                    ex.c.prompt_id == prompt_id,
                    (ex.c.created_ms < created) | ((ex.c.created_ms == created) & (ex.c.id < kept)),
                )
            )


async def _expire_executions(b: Batch) -> None:
    """Delete raw executions and production examples past ``retention_days`` of event
    time; the aggregates stay. The clock is the stream's, so a replay deletes exactly
    the same rows."""
    if b.p.retention_ms <= 0:
        return
    cutoff = b.counters.get("clock_ms", 0) - b.p.retention_ms
    if cutoff > 0:
        ex = t.executions
        await b.conn.execute(delete(ex).where(ex.c.occurred_ms < cutoff))
        await b.conn.execute(delete(t.examples).where(t.examples.c.created_ms < cutoff))


async def _expire_pending(b: Batch) -> None:
    """Drop (and count) stored feedback that waited longer than ``feedback_wait_s``."""
    cutoff = b.counters.get("clock_ms", 0) - b.p.feedback_wait_ms
    pf = t.pending_feedback
    expired = await b.conn.scalar(
        select(func.count()).select_from(pf).where(pf.c.occurred_ms < cutoff)
    )
    if expired:
        await b.conn.execute(delete(pf).where(pf.c.occurred_ms < cutoff))
        b.count("feedback_dropped", int(expired))


async def _add(b: Batch, table: Any, rows: list[dict[str, Any]]) -> None:
    """Upsert counters: insert, or add to the existing row's counters."""
    if rows:
        store = b.p.store
        stmt = b.p.statement("add", table, lambda: _upsert_add(store, table))
        await b.conn.execute(stmt, rows)


async def _replace(b: Batch, table: Any, rows: list[dict[str, Any]]) -> None:
    """Upsert whole rows: insert, or overwrite every non-key column."""
    if rows:
        store = b.p.store
        stmt = b.p.statement("replace", table, lambda: _upsert_replace(store, table))
        await b.conn.execute(stmt, rows)


def _upsert_add(store: Store, table: Any) -> Any:
    stmt = store.insert(table)
    keys = [c.name for c in table.primary_key.columns]
    counters = [c.name for c in table.columns if c.name not in keys]
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={c: table.c[c] + stmt.excluded[c] for c in counters}
    )


def _upsert_replace(store: Store, table: Any) -> Any:
    stmt = store.insert(table)
    keys = [c.name for c in table.primary_key.columns]
    return stmt.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
    )


_e, _pf = t.executions, t.pending_feedback
_UPDATE_REWARD = (
    update(_e)
    .where(_e.c.execution_id == bindparam("b_id"))
    .values(
        feedback_sequence=bindparam("b_seq"),
        feedback_value=bindparam("b_value"),
        reward=bindparam("b_reward"),
    )
)
_x = t.examples
_RATE_EXAMPLE = (
    update(_x)
    .where(_x.c.id == bindparam("b_id"), _x.c.source == "call")
    .values(reward=bindparam("b_reward"), comment=bindparam("b_comment"))
)
_CORRECT_EXAMPLE = (
    update(_x)
    .where(_x.c.id == bindparam("b_id"))
    .values(
        # Every SET expression reads the row as it was: the first correction keeps the
        # model's answer, a later one keeps it too.
        replaced_answer=case((_x.c.source == "call", _x.c.answer), else_=_x.c.replaced_answer),
        answer=bindparam("b_text"),
        source="correction",
        reward=bindparam("b_reward"),
        comment=bindparam("b_comment"),
    )
)
_DELETE_PENDING = delete(_pf).where(_pf.c.execution_id.in_(bindparam("ids", expanding=True)))
_DELETE_OUTBOX = delete(t.outbox).where(t.outbox.c.event_id.in_(bindparam("ids", expanding=True)))
