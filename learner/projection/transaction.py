"""The exactly-once projection: a batch of stream deliveries into SQL in one transaction.

:meth:`Projection.apply` writes everything a batch changes *and* the new tracking
position in a single transaction. Sequences at or below the position are skipped, so a
redelivered batch or a duplicate changes nothing; the caller acks only after it returns.
Every event type is either applied or explicitly ignored, and the position advances
past all of them, including undecodable ones (returned as dead letters for the caller
to publish).

Aggregates are summed in memory per batch and written as integer upserts
(``col = col + excluded.col``), new rows with ``executemany``: that keeps replay fast
and makes totals independent of where batch boundaries fall.

Nothing here reads the wall clock or draws random numbers: time comes from event
``occurred_at`` fields, so ``promptlab replay`` rebuilds identical tables. "Now" is the
newest ``occurred_at`` seen so far in stream order (``clock_ms``), which is how long
feedback waits for its execution (``feedback_wait_s``) is measured: the same on replay
whatever the batch boundaries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from events.bus import Delivery
from events.models import (
    BaseEvent,
    CommandRejected,
    ExecutionCompleted,
    ExplorationPaused,
    ExplorationResumed,
    FeedbackReceived,
    LifecycleCommand,
    PauseCommand,
    PromoteCommand,
    PromptRegistered,
    RollbackCommand,
    VariantLifecycleChanged,
    VariantPromoted,
    VariantRegistered,
    VariantRetired,
    VariantRolledBack,
    encode,
)
from learner.projection.commands import Command, carry_out
from learner.projection.decisions import decision_record
from learner.projection.definitions import definition_row, specs_from_rows
from learner.projection.evidence import start_test, step_call, stop_test
from learner.projection.reward import (
    RewardRule,
    effective_promotion,
    finite,
    raw_value,
    rule_from_spec,
)
from learner.projection.state import LearnerState, PromptRow, VariantRow, new_test
from learner.projection.variables import HOUR_MS, ValueCounts
from learner.stats.etest import probation_steps
from learner.storage import schema as t
from learner.storage.schema import AGGREGATE_COLUMNS, MICRO, NANO
from learner.storage.store import Store, latency_bucket
from learner.storage.view import window_minutes
from prompts.config import PromotionConfig
from prompts.spec import PromptSpec

log = logging.getLogger(__name__)

_CHUNK = 500  # ids per IN (...) query: well under every driver's parameter limit
_N_AGG = len(AGGREGATE_COLUMNS)
_EXECUTIONS, _ERRORS, _REWARDED, _POSITIVE, _REWARD, _REWARD_SQ, _COST, _TOKENS, _LATENCY = range(
    _N_AGG
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery the projection could not decode: publish it aside with the reason."""

    sequence: int
    data: bytes
    reason: str


@dataclass(slots=True)
class BatchResult:
    """What one :meth:`Projection.apply` did."""

    position: int
    """Tracking position after the batch."""
    applied: int = 0
    skipped: int = 0
    """Deliveries at or below the previous position (redeliveries, duplicates)."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    """Prompts whose state or statistics changed."""
    outbox: list[BaseEvent] = field(default_factory=list)
    """Answers to commands, written to the outbox: publish them after commit."""
    decisions: list[BaseEvent] = field(default_factory=list)
    """Decision events applied in this batch (promotions, rollbacks, ...)."""


@dataclass(slots=True)
class _Exec:
    """What the feedback join needs to know about one execution."""

    prompt_id: str | None
    variant: str | None
    occurred_ms: int
    cost_usd: float
    latency_ms: float
    feedback_sequence: int | None = None
    """Sequence of the feedback that counts now (None: not rewarded yet)."""
    value: float | None = None
    """Its value on 0..1, before cost and latency weights."""
    reward: float | None = None
    fallback_from: str | None = None
    """Set when this call answered for a challenger that failed (not a reward)."""
    new_row: dict[str, Any] | None = None
    probability: float | None = None
    """The routing probability logged for the call (None: not routed or not logged)."""
    """The row to insert when the execution arrived in this batch."""

    @property
    def rewarded(self) -> bool:
        return self.feedback_sequence is not None


def event_ms(event: BaseEvent) -> int:
    """An event's ``occurred_at`` in milliseconds since the epoch."""
    return int(event.occurred_at.timestamp() * 1000)


class Projection:
    """Applies stream deliveries to a :class:`Store`, exactly once per sequence.

    ``rewards`` maps prompt ids to their :class:`RewardRule` (unknown prompts accept
    any feedback name); ``promotion`` returns a prompt's effective promotion config
    (for the probation length). Prompts defined at run time (``PromptRegistered``)
    without a rule in ``rewards`` get theirs from their definition (:attr:`defined`),
    in stream order. With ``write_outbox=False`` (replay) command answers are
    computed but not stored for publishing.
    """

    def __init__(
        self,
        store: Store,
        *,
        consumer: str,
        rewards: Mapping[str, RewardRule] | None = None,
        promotion: Callable[[str], PromotionConfig] | None = None,
        routing: Callable[[str], tuple[float, float] | None] | None = None,
        write_outbox: bool = True,
        feedback_repeat: Literal["first", "last"] = "last",
        feedback_wait_s: float = 3600.0,
        retention_days: float = 0.0,
    ) -> None:
        self.store = store
        self.retention_ms = round(retention_days * 86_400_000)
        """Raw executions older than this before the event clock are deleted (0: never)."""
        self.consumer = consumer
        self.rewards = dict(rewards or {})
        self._promotion = promotion or (lambda _prompt: PromotionConfig())
        self._routing = routing or (lambda _prompt: None)
        self.defined: dict[str, PromptSpec] = {}
        """Prompts defined at run time, as of the position (``prompt_definitions``)."""
        self._defined_rules: dict[str, RewardRule] = {}
        self.write_outbox = write_outbox
        self.feedback_repeat = feedback_repeat
        self.feedback_wait_ms = round(feedback_wait_s * 1000)
        self.counters: dict[str, int] = {}
        """``learner_counters`` as committed (see :data:`learner.storage.schema.learner_counters`)."""
        self.state = LearnerState()
        self.position = 0
        self.in_flight: dict[str, str] = {}
        """Outbox event id -> prompt id: decisions published but not yet seen back."""
        self._loaded = False
        self._default_rule = RewardRule()
        self._statements: dict[tuple[str, str], Any] = {}

    def statement(self, name: str, table: Any, build: Callable[[], Any]) -> Any:
        """A write statement built once per projection: building an upsert (its
        ``excluded`` alias, the ``set_`` expressions) costs more than executing it."""
        key = (name, table.name)
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = build()
        return stmt

    async def load(self) -> None:
        """Read the position, prompt and variant rows and the outbox into memory."""
        async with self.store.engine.connect() as conn:
            await self._load(conn)

    async def _load(self, conn: AsyncConnection) -> None:
        pos = await conn.scalar(
            select(t.projection_position.c.sequence).where(
                t.projection_position.c.consumer == self.consumer
            )
        )
        self.position = int(pos or 0)
        state = LearnerState()
        for row in await conn.execute(select(t.prompt_state)):
            state.prompts[row.prompt_id] = PromptRow.from_row(dict(row._mapping))
        for row in await conn.execute(select(t.variants)):
            state.variants[(row.prompt_id, row.variant)] = VariantRow.from_row(dict(row._mapping))
        self.state = state
        self.define_all(
            specs_from_rows(r._mapping for r in await conn.execute(select(t.prompt_definitions)))
        )
        self.counters = {
            r.name: int(r.value)
            for r in await conn.execute(
                select(t.learner_counters.c.name, t.learner_counters.c.value)
            )
        }
        self.in_flight = {
            r.event_id: r.prompt_id
            for r in await conn.execute(select(t.outbox.c.event_id, t.outbox.c.prompt_id))
        }
        self._loaded = True

    # ------------------------------------------------------------------ batch

    async def apply(self, deliveries: Sequence[Delivery]) -> BatchResult:
        """Apply a batch in one transaction; returns what changed. Does not ack."""
        try:
            async with self.store.begin() as conn:
                stored = await conn.scalar(
                    select(t.projection_position.c.sequence).where(
                        t.projection_position.c.consumer == self.consumer
                    )
                )
                if not self._loaded or int(stored or 0) != self.position:
                    await self._load(conn)  # someone else wrote (or first batch): resync
                batch = _Batch(self, conn)
                result = await batch.run(sorted(deliveries, key=lambda d: d.sequence))
        except BaseException:
            self._loaded = False  # memory may hold half a batch: reload before the next
            raise
        self.position = result.position
        return result

    def rule(self, prompt_id: str) -> RewardRule:
        rule = self.rewards.get(prompt_id)
        if rule is None:
            rule = self._defined_rules.get(prompt_id, self._default_rule)
        return rule

    def promotion(self, prompt_id: str) -> PromotionConfig:
        """A prompt's promotion config; a prompt defined at run time (and by no file,
        whose config the caller's function knows) adds its own overrides."""
        config = self._promotion(prompt_id)
        spec = self.defined.get(prompt_id)
        if spec is None or prompt_id in self.rewards:
            return config
        return effective_promotion(spec, config)

    def routing(self, prompt_id: str) -> tuple[float, float]:
        """A prompt's ``(exploration_cap, exploration_floor)``: from its file (the
        caller's function), else its run-time definition, else the defaults."""
        known = self._routing(prompt_id)
        if known is not None:
            return known
        spec = self.defined.get(prompt_id)
        if spec is not None:
            return (spec.routing.exploration_cap, spec.routing.exploration_floor)
        return (0.2, 0.05)

    def define(self, spec: PromptSpec) -> None:
        """Take a prompt's run-time definition (its reward rule applies from now on)."""
        self.defined[spec.id] = spec
        self._defined_rules[spec.id] = rule_from_spec(spec)

    def define_all(self, specs: Mapping[str, PromptSpec]) -> None:
        self.defined, self._defined_rules = {}, {}
        for spec in specs.values():
            self.define(spec)


class _Batch:
    """The working set of one transaction."""

    def __init__(self, projection: Projection, conn: AsyncConnection) -> None:
        self.p = projection
        self.conn = conn
        self.state = projection.state
        self.result = BatchResult(position=projection.position)
        self.execs: dict[str, _Exec] = {}
        self.reward_updates: list[dict[str, Any]] = []
        self.pending_db: dict[str, list[tuple[int, str, bool | float, int]]] = {}
        self.pending_new: dict[str, list[tuple[int, str, bool | float, int]]] = {}
        self.pending_delete: set[str] = set()
        self.arms: dict[tuple[str, str], list[int]] = {}
        self.minutes: dict[tuple[str, str, int], list[int]] = {}
        self.hist: dict[tuple[str, str, int], int] = {}
        self.values = ValueCounts()
        self.dirty_prompts: set[str] = set()
        self.dirty_variants: set[tuple[str, str]] = set()
        self.decision_rows: list[dict[str, Any]] = []
        self.version_rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.definition_rows: dict[str, dict[str, Any]] = {}
        self.base_arms: dict[tuple[str, str], list[int]] = {}
        self.base_minutes: dict[tuple[str, str], list[tuple[int, list[int]]]] = {}
        self.outbox_new: list[dict[str, Any]] = []
        self.outbox_done: list[str] = []
        self.counters = projection.counters
        self.dirty_counters: set[str] = set()
        self.renames: list[tuple[str, str, str]] = []
        """``(prompt, name, archived)``: an old version's rows to move before writing."""

    async def run(self, deliveries: Sequence[Delivery]) -> BatchResult:
        position = self.p.position
        fresh: list[Delivery] = []
        for d in deliveries:
            if d.sequence <= position:
                self.result.skipped += 1
                continue
            position = d.sequence
            fresh.append(d)
        await self._prefetch(fresh)
        for d in fresh:
            if d.event is None:
                reason = d.error or "undecodable event"
                log.warning("dead-lettering stream sequence %d: %s", d.sequence, reason)
                self.result.dead_letters.append(DeadLetter(d.sequence, d.data, reason))
                self._count("dead_letters")
                continue
            self._apply(d.sequence, d.event)
            self.result.applied += 1
        self.result.position = position
        if position > self.p.position:
            await self._write(position)
        return self.result

    # ------------------------------------------------------------------ reads

    async def _prefetch(self, fresh: Iterable[Delivery]) -> None:
        """Load the executions and early feedback this batch's events refer to."""
        exec_ids: set[str] = set()
        arriving: set[str] = set()
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
        for chunk in _chunks(sorted(exec_ids)):
            rows = await self.conn.execute(_SELECT_EXECUTIONS, {"ids": chunk})
            for row in rows:
                exec_id, prompt_id, variant, occurred, cost, latency = row[:6]
                fb_seq, value, reward, fallback_from, probability = row[6:]
                self.execs[exec_id] = _Exec(
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
        for chunk in _chunks(sorted(arriving - self.execs.keys())):
            for exec_id, seq, name, value, boolean, ms in await self.conn.execute(
                _SELECT_PENDING, {"ids": chunk}
            ):
                raw: bool | float = bool(value) if boolean else float(value)
                self.pending_db.setdefault(exec_id, []).append((int(seq), name, raw, int(ms)))
        for prompt_id in sorted(promoted):
            await self._prefetch_totals(prompt_id)
        await self.values.prefetch(self.conn, value_hours)

    async def _prefetch_totals(self, prompt_id: str) -> None:
        """Committed counters of a prompt's arms, for the baseline of a promotion in
        this batch: all time, or the minute buckets that may fall in the window."""
        minutes = window_minutes(self.p.promotion(prompt_id).evaluation_window)
        if minutes is None:
            rows = await self.conn.execute(
                select(t.arm_stats).where(t.arm_stats.c.prompt_id == prompt_id)
            )
            for row in rows:
                m = row._mapping
                self.base_arms[(prompt_id, m["variant"])] = [int(m[c]) for c in AGGREGATE_COLUMNS]
            return
        known = self.state.prompts.get(prompt_id)
        # "now" only moves forward within the batch, so the window starts here or later.
        earliest = (known.last_event_ms if known else 0) // 60_000 - minutes + 1
        mb = t.minute_buckets
        rows = await self.conn.execute(
            select(mb).where(mb.c.prompt_id == prompt_id, mb.c.minute >= earliest)
        )
        for row in rows:
            m = row._mapping
            self.base_minutes.setdefault((prompt_id, m["variant"]), []).append(
                (int(m["minute"]), [int(m[c]) for c in AGGREGATE_COLUMNS])
            )

    # ------------------------------------------------------------------ events

    def _apply(self, seq: int, ev: BaseEvent) -> None:
        match ev:
            case ExecutionCompleted():
                self._execution(seq, ev)
            case FeedbackReceived():
                self._feedback(seq, ev)
            case VariantRegistered():
                self._registered(seq, ev)
            case PromptRegistered():
                if (defined := definition_row(seq, event_ms(ev), ev)) is not None:
                    self.p.define(defined[0])
                    self.definition_rows[ev.prompt_id] = defined[1]
                    self.result.touched.add(ev.prompt_id)
            case (
                VariantPromoted()
                | VariantRolledBack()
                | VariantRetired()
                | ExplorationPaused()
                | ExplorationResumed()
                | VariantLifecycleChanged()
                | CommandRejected()
            ):
                self._decision(seq, ev)
            case PromoteCommand() | RollbackCommand() | PauseCommand() | LifecycleCommand():
                self._command(seq, ev)
            case _:
                # A type this learner does not project: the position still advances.
                log.debug("ignoring %s at sequence %d", type(ev).__name__, seq)

    def _prompt(self, prompt_id: str, seq: int) -> PromptRow:
        row = self.state.prompts.get(prompt_id)
        if row is None:
            row = self.state.prompts[prompt_id] = PromptRow(prompt_id=prompt_id)
        row.last_sequence = seq
        self.dirty_prompts.add(prompt_id)
        self.result.touched.add(prompt_id)
        return row

    def _arm(self, prompt_id: str, variant: str) -> list[int]:
        acc = self.arms.get((prompt_id, variant))
        if acc is None:
            acc = self.arms[(prompt_id, variant)] = [0] * _N_AGG
        return acc

    def _minute(self, prompt_id: str, variant: str, minute: int) -> list[int]:
        key = (prompt_id, variant, minute)
        acc = self.minutes.get(key)
        if acc is None:
            acc = self.minutes[key] = [0] * _N_AGG
        return acc

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
        self.dirty_counters.add(name)

    def _tick(self, occurred_ms: int) -> int:
        """Advance the event-time clock; returns "now"."""
        now = self.counters.get("clock_ms", 0)
        if occurred_ms > now:
            self.counters["clock_ms"] = now = occurred_ms
            self.dirty_counters.add("clock_ms")
        return now

    def _expired(self, feedback_ms: int) -> bool:
        """Has feedback sent at ``feedback_ms`` waited longer than ``feedback_wait_s``?"""
        return feedback_ms + self.p.feedback_wait_ms < self.counters.get("clock_ms", 0)

    def _execution(self, seq: int, ev: ExecutionCompleted) -> None:
        if ev.source == "offline":  # an experiment's or evolution's trial: not live evidence
            return
        if ev.execution_id in self.execs:
            return  # the same execution published twice under two event ids
        occurred = event_ms(ev)
        self._tick(occurred)
        variant = ev.variant
        if ev.prompt_id is not None and variant is not None:
            variant = self._arm_name(ev.prompt_id, variant, ev.version)
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
        ex = _Exec(
            ev.prompt_id,
            variant,
            occurred,
            cost,
            latency,
            fallback_from=fallback_from,
            new_row=row,
            probability=None if ev.routing is None else ev.routing.probability,
        )
        self.execs[ev.execution_id] = ex
        if ev.prompt_id is None or variant is None:
            return  # an unrouted passthrough call: kept for analytics, no arm
        prompt = self._prompt(ev.prompt_id, seq)
        if occurred > prompt.last_event_ms:
            prompt.last_event_ms = occurred
        errors = 1 if ev.status == "error" else 0
        cost_nano = round(cost * NANO)
        tokens = ev.input_tokens + ev.output_tokens
        latency_us = round(latency * 1000)
        for acc in (
            self._arm(ev.prompt_id, variant),
            self._minute(ev.prompt_id, variant, occurred // 60_000),
        ):
            acc[_EXECUTIONS] += 1
            acc[_ERRORS] += errors
            acc[_COST] += cost_nano
            acc[_TOKENS] += tokens
            acc[_LATENCY] += latency_us
        if prompt.previous_champion is not None and variant == prompt.champion:
            prompt.probation_executions += 1
            prompt.probation_errors += errors
            prompt.probation_cost_nano += cost_nano
        hkey = (ev.prompt_id, variant, latency_bucket(latency))
        self.hist[hkey] = self.hist.get(hkey, 0) + 1
        if ev.variable_values:
            self.values.add(ev.prompt_id, variant, occurred // HOUR_MS, ev.variable_values)
        if errors and getattr(ev, "fell_back_to", None):
            # A routed challenger failed and the champion answered instead: the failure
            # is the challenger's, a reward of 0 in its statistics (not only an error),
            # so it is not judged on its successful calls alone.
            self._reward(ex, ev.execution_id, seq, 0.0, seq)
            self._count("fallback_failures")
        # Feedback that arrived first (earlier batches, then this one) joins now.
        early_db = self.pending_db.pop(ev.execution_id, None)
        early_new = self.pending_new.pop(ev.execution_id, None)
        if early_db or early_new:
            self.pending_delete.add(ev.execution_id)
            for fb_seq, name, raw, fb_ms in sorted((early_db or []) + (early_new or [])):
                if self._expired(fb_ms):
                    self._count("feedback_dropped")
                else:
                    self._judge(ex, ev.execution_id, fb_seq, name, raw, seq)

    def _feedback(self, seq: int, ev: FeedbackReceived) -> None:
        raw = raw_value(ev.value)
        if raw is None:
            log.warning(
                "ignoring NaN feedback %r for %s at sequence %d", ev.name, ev.execution_id, seq
            )
            self._count("feedback_rejected")
            return
        self._tick(event_ms(ev))
        ex = self.execs.get(ev.execution_id)
        if ex is None:
            self.pending_new.setdefault(ev.execution_id, []).append(
                (seq, ev.name, raw, event_ms(ev))
            )
            return
        self._judge(ex, ev.execution_id, seq, ev.name, raw, seq)

    def _judge(
        self, ex: _Exec, execution_id: str, fb_seq: int, name: str, raw: bool | float, seq: int
    ) -> None:
        """One feedback for a known execution: reward it, replace its reward, or not."""
        if ex.prompt_id is None or ex.variant is None:
            return  # unrouted calls have no arm to reward
        if ex.fallback_from is not None:
            return  # the champion answered for a failed challenger: evidence of neither
        rule = self.p.rule(ex.prompt_id)
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
            self._count("feedback_rejected")
            return
        if ex.rewarded:
            if self.p.feedback_repeat == "first":
                self._count("feedback_ignored")
                return
            self._unreward(ex)
            self._count("feedback_replaced")
            self._reward(ex, execution_id, fb_seq, value, seq, replacing=True)
            return
        self._reward(ex, execution_id, fb_seq, value, seq)

    def _unreward(self, ex: _Exec) -> None:
        """Take an execution's current reward out of its arm's counters."""
        assert ex.prompt_id is not None and ex.variant is not None
        old_value, old_reward = ex.value or 0.0, ex.reward or 0.0
        for acc in (
            self._arm(ex.prompt_id, ex.variant),
            self._minute(ex.prompt_id, ex.variant, ex.occurred_ms // 60_000),
        ):
            acc[_REWARDED] -= 1
            acc[_POSITIVE] -= 1 if old_value >= 0.5 else 0
            acc[_REWARD] -= round(old_reward * MICRO)
            acc[_REWARD_SQ] -= round(old_reward * old_reward * MICRO)

    def _reward(
        self,
        ex: _Exec,
        execution_id: str,
        fb_seq: int,
        value: float,
        seq: int,
        *,
        replacing: bool = False,
    ) -> None:
        assert ex.prompt_id is not None and ex.variant is not None
        reward = self.p.rule(ex.prompt_id).reward(value, ex.cost_usd, ex.latency_ms)
        ex.feedback_sequence, ex.value, ex.reward = fb_seq, value, reward
        if ex.new_row is not None:
            ex.new_row.update(feedback_sequence=fb_seq, feedback_value=value, reward=reward)
        else:
            self.reward_updates.append(
                {"b_id": execution_id, "b_seq": fb_seq, "b_value": value, "b_reward": reward}
            )
        micro = round(reward * MICRO)
        sq = round(reward * reward * MICRO)
        positive = 1 if value >= 0.5 else 0
        for acc in (
            self._arm(ex.prompt_id, ex.variant),
            self._minute(ex.prompt_id, ex.variant, ex.occurred_ms // 60_000),
        ):
            acc[_REWARDED] += 1
            acc[_POSITIVE] += positive
            acc[_REWARD] += micro
            acc[_REWARD_SQ] += sq
        prompt = self._prompt(ex.prompt_id, seq)
        if replacing:
            return  # a probation record keeps the first rating (see learner.projection.reward)
        if prompt.previous_champion is not None and ex.variant == prompt.champion:
            # Rewards since the promotion (counted until the next promotion or a
            # rollback; the policy decides how long it judges them).
            prompt.probation_rewarded += 1
            prompt.probation_reward_micro += micro
            prompt.probation_reward_sq_micro += sq
        config = self.p.promotion(ex.prompt_id)
        length = probation_steps(config)
        variants = self.state.variants_of(ex.prompt_id)
        for name, row in variants.items():
            if row.test_number:
                self.dirty_variants.add((ex.prompt_id, name))
        step_call(
            prompt,
            variants.values(),
            ex.variant,
            reward,
            ex.probability,
            config,
            self.p.routing(ex.prompt_id),
            probation_length=length,
        )
        if prompt.probation_variant is not None:
            # Every rewarded call of the prompt is a step of the probation's test.
            prompt.probation_steps += 1
            if prompt.probation_steps >= length:
                self._end_probation(ex.prompt_id, prompt)

    def _end_probation(self, prompt_id: str, prompt: PromptRow) -> None:
        """Probation served without a rollback: a full champion from here on, and the
        holdback an ordinary challenger again."""
        assert prompt.probation_variant is not None
        self._set_status(prompt_id, prompt.probation_variant, "champion")
        previous = prompt.previous_champion
        if previous is not None:
            row = self.state.variants.get((prompt_id, previous))
            if row is not None and row.status == "holdback":
                self._set_status(prompt_id, previous, "challenger")
        prompt.probation_variant = None
        self._start_tests(prompt_id, prompt.last_sequence)

    def _registered(self, seq: int, ev: VariantRegistered) -> None:
        if ev.source == "offline":  # an offline search candidate: lineage only, never routed
            return
        self.version_rows.setdefault(
            (ev.prompt_id, ev.variant, ev.version),
            {
                "prompt_id": ev.prompt_id,
                "variant": ev.variant,
                "version": ev.version,
                "sequence": seq,
                "occurred_ms": event_ms(ev),
                "origin": ev.origin,
                "parent": ev.parent,
                "strategy": ev.strategy,
                "model": ev.model,
                "lifecycle": ev.status,
                "params": json.dumps(ev.params, sort_keys=True),
                "system": ev.system,
                "template": ev.template,
            },
        )
        key = (ev.prompt_id, ev.variant)
        prompt = self._prompt(ev.prompt_id, seq)
        existing = self.state.variants.get(key)
        if existing is None:
            self.state.variants[key] = VariantRow(
                prompt_id=ev.prompt_id,
                variant=ev.variant,
                version=ev.version,
                model=ev.model,
                origin=ev.origin,
                parent=ev.parent,
                strategy=ev.strategy,
                status="challenger",
                registered_sequence=seq,
                lifecycle=ev.status,
            )
        elif existing.version != ev.version:
            self._new_version(seq, ev, existing)
        else:
            # The same version registered again (a restart) keeps what operators made
            # of it, unless it was still a draft; a new version takes its file's status.
            if existing.lifecycle == "draft":
                existing.lifecycle = ev.status
            existing.model = ev.model
        self.dirty_variants.add(key)
        if prompt.champion is None or (ev.champion and not prompt.champion_explicit):
            if prompt.champion is not None and prompt.champion != ev.variant:
                self._set_status(ev.prompt_id, prompt.champion, "challenger")
            prompt.champion = ev.variant
            prompt.champion_explicit = ev.champion
            self._set_status(ev.prompt_id, ev.variant, "champion")
        self._start_tests(ev.prompt_id, seq)

    def _start_tests(self, prompt_id: str, seq: int, *, restart: bool = False) -> None:
        """Give every live challenger without a running test a new one against the
        champion (``restart``: every live challenger, as a new champion starts a new
        epoch), numbered by the prompt's count of tests started (e-LOND's ``j``), in
        registration order. The scenario simulator starts tests at the same moments."""
        prompt = self.state.prompts[prompt_id]
        for row in self.state.variants_of(prompt_id).values():
            live = row.status == "challenger" and row.lifecycle == "active"
            if not live:
                if row.test_number:
                    stop_test(row)
                    self.dirty_variants.add((prompt_id, row.variant))
                continue
            if row.test_number and not restart:
                continue
            prompt.tests_started += 1
            start_test(row, prompt.tests_started, seq)
            self.dirty_variants.add((prompt_id, row.variant))

    def _new_version(self, seq: int, ev: VariantRegistered, row: VariantRow) -> None:
        """A changed variant under the same name: a new version with no evidence.

        The old version's evidence moves, in this transaction, to the retired arm
        ``<name>@<old version>`` (counters, minute buckets, latency histogram and its
        executions, so late feedback for them lands there too); the name continues with
        the new version at zero. The change is logged and recorded in ``decisions``.
        """
        prompt_id, name = ev.prompt_id, ev.variant
        archived = f"{name}@{row.version}"
        if (prompt_id, archived) in self.state.variants:
            archived = f"{archived}.{seq}"  # the same old content archived twice
        self.state.variants[(prompt_id, archived)] = VariantRow(
            prompt_id=prompt_id,
            variant=archived,
            version=row.version,
            model=row.model,
            origin=row.origin,
            parent=row.parent,
            strategy=row.strategy,
            status="retired",
            registered_sequence=row.registered_sequence,
        )
        self.dirty_variants.add((prompt_id, archived))
        _rekey(self.arms, prompt_id, name, archived)
        _rekey(self.minutes, prompt_id, name, archived)
        _rekey(self.hist, prompt_id, name, archived)
        self.values.rekey(prompt_id, name, archived)
        for ex in self.execs.values():
            if ex.prompt_id == prompt_id and ex.variant == name:
                ex.variant = archived
                if ex.new_row is not None:
                    ex.new_row["variant"] = archived
        self.renames.append((prompt_id, name, archived))
        stop_test(row)  # the new version is tested afresh
        prompt = self.state.prompts[prompt_id]
        if prompt.probation_variant == name:  # the record was of the old version
            self._end_probation(prompt_id, prompt)
            prompt.previous_champion = None
            prompt.clear_probation()
        summary = (
            f"{name}: version {row.version} -> {ev.version} ({ev.origin}); the new version "
            f"starts with no evidence, the old one is retired as {archived}"
        )
        log.warning("prompt %s: %s", prompt_id, summary)
        self.decision_rows.append(
            {
                "sequence": seq,
                "event_id": ev.event_id,
                "prompt_id": prompt_id,
                "type": "variant.version_changed",
                "variant": name,
                "previous": archived,
                "reason": "new version",
                "actor": ev.origin,
                "summary": summary,
                "evidence": None,
                "occurred_ms": event_ms(ev),
            }
        )
        row.version, row.model = ev.version, ev.model
        row.origin, row.parent, row.strategy = ev.origin, ev.parent, ev.strategy
        row.lifecycle = ev.status

    def _arm_name(self, prompt_id: str, variant: str, version: str | None) -> str:
        """The arm an execution counts for: an old version's calls finishing after its
        successor was registered count for the retired ``<name>@<version>``."""
        if version is None:
            return variant
        row = self.state.variants.get((prompt_id, variant))
        if row is None or row.version == version:
            return variant
        archived = f"{variant}@{version}"
        return archived if (prompt_id, archived) in self.state.variants else variant

    def _set_status(self, prompt_id: str, variant: str, status: str) -> None:
        row = self.state.variants.get((prompt_id, variant))
        if row is not None and row.status != status:
            row.status = status  # type: ignore[assignment]
            self.dirty_variants.add((prompt_id, variant))

    def _decision(self, seq: int, ev: Any) -> None:
        prompt = self._prompt(ev.prompt_id, seq)
        if self.p.in_flight.pop(ev.event_id, None) is not None:
            self.outbox_done.append(ev.event_id)
        self.result.decisions.append(ev)
        self.decision_rows.append(decision_record(seq, ev))
        match ev:
            case VariantPromoted() if ev.variant != prompt.champion:
                config = self.p.promotion(ev.prompt_id)
                on_probation = probation_steps(config) > 0
                if prompt.probation_variant is not None:
                    self._end_probation(ev.prompt_id, prompt)  # an operator's promotion
                if prompt.champion is not None:
                    held = on_probation and config.holds_back
                    self._set_status(
                        ev.prompt_id, prompt.champion, "holdback" if held else "challenger"
                    )
                baseline = (
                    {}
                    if prompt.champion is None
                    else self._totals_now(ev.prompt_id, prompt.champion, prompt.last_event_ms)
                )
                prompt.start_probation(baseline)
                prompt.previous_champion = prompt.champion
                prompt.champion = ev.variant
                prompt.champion_explicit = True
                prompt.last_decision_sequence = seq
                prompt.probation_steps = 0
                prompt.probation_test = new_test()
                if on_probation:
                    prompt.probation_variant = ev.variant
                    self._set_status(ev.prompt_id, ev.variant, "probation")
                else:
                    prompt.probation_variant = None
                    self._set_status(ev.prompt_id, ev.variant, "champion")
                self._start_tests(ev.prompt_id, seq, restart=True)
            case VariantRolledBack() if ev.variant == prompt.champion:
                self._set_status(
                    ev.prompt_id, ev.variant, "retired" if ev.reason == "auto" else "challenger"
                )
                self._set_status(ev.prompt_id, ev.restored, "champion")
                prompt.champion = ev.restored
                prompt.previous_champion = None
                prompt.probation_variant = None
                prompt.probation_steps = 0
                prompt.clear_probation()
                prompt.last_decision_sequence = seq
                self._start_tests(ev.prompt_id, seq, restart=True)
            case VariantRetired() if ev.variant != prompt.champion:
                self._set_status(ev.prompt_id, ev.variant, "retired")
                prompt.last_decision_sequence = seq
                self._start_tests(ev.prompt_id, seq)
            case ExplorationPaused():
                prompt.paused = True
            case ExplorationResumed():
                prompt.paused = False
            case VariantLifecycleChanged():
                row = self.state.variants.get((ev.prompt_id, ev.variant))
                if row is not None and row.lifecycle != ev.status:
                    row.lifecycle = ev.status
                    self.dirty_variants.add((ev.prompt_id, ev.variant))
                    prompt.last_decision_sequence = seq
                    self._start_tests(ev.prompt_id, seq)
            case _:
                pass  # rejections, and decisions overtaken by an earlier one: logged only

    def _totals_now(self, prompt_id: str, variant: str, last_event_ms: int) -> dict[str, int]:
        """An arm's counters at this point of the stream (committed + this batch so far),
        over the prompt's evaluation window like :func:`learner.storage.view.load_view`."""
        acc = [0] * _N_AGG
        minutes = window_minutes(self.p.promotion(prompt_id).evaluation_window)
        if minutes is None:
            parts = [self.base_arms.get((prompt_id, variant)), self.arms.get((prompt_id, variant))]
        else:
            since = last_event_ms // 60_000 - minutes + 1
            parts = [c for m, c in self.base_minutes.get((prompt_id, variant), []) if m >= since]
            parts += [
                c
                for (p, v, m), c in self.minutes.items()
                if p == prompt_id and v == variant and m >= since
            ]
        for part in parts:
            if part is not None:
                for i, value in enumerate(part):
                    acc[i] += value
        return _named(acc)

    def _command(self, seq: int, ev: Command) -> None:
        answer = carry_out(ev, self.state)
        if not self.p.write_outbox or answer.event_id in self.p.in_flight:
            return
        self.p.in_flight[answer.event_id] = ev.prompt_id
        self.outbox_new.append(
            {"event_id": answer.event_id, "prompt_id": ev.prompt_id, "data": encode(answer)}
        )
        self.result.outbox.append(answer)

    # ------------------------------------------------------------------ writes

    async def _write(self, position: int) -> None:
        conn, store = self.conn, self.p.store
        for prompt_id, name, archived in self.renames:
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
        new_execs = [ex.new_row for ex in self.execs.values() if ex.new_row is not None]
        if new_execs:
            await conn.execute(t.executions.insert(), new_execs)
        if self.reward_updates:
            await conn.execute(_UPDATE_REWARD, self.reward_updates)
        for chunk in _chunks(sorted(self.pending_delete)):
            await conn.execute(_DELETE_PENDING, {"ids": chunk})
        await self._expire_pending()
        await self._expire_executions()
        pending_rows = [
            {
                "sequence": s,
                "execution_id": exec_id,
                "name": n,
                "value": float(v),
                "boolean": isinstance(v, bool),
                "occurred_ms": ms,
            }
            for exec_id, items in self.pending_new.items()
            for s, n, v, ms in items
            if not self._expired(ms)
        ]
        dropped_new = sum(len(items) for items in self.pending_new.values()) - len(pending_rows)
        if dropped_new:
            self._count("feedback_dropped", dropped_new)
        if pending_rows:
            await conn.execute(t.pending_feedback.insert(), pending_rows)
        await self._add(
            t.arm_stats,
            [{"prompt_id": p, "variant": v, **_named(acc)} for (p, v), acc in self.arms.items()],
        )
        await self._add(
            t.minute_buckets,
            [
                {"prompt_id": p, "variant": v, "minute": m, **_named(acc)}
                for (p, v, m), acc in self.minutes.items()
            ],
        )
        await self._add(
            t.latency_histogram,
            [
                {"prompt_id": p, "variant": v, "bucket": b, "count": n}
                for (p, v, b), n in self.hist.items()
            ],
        )
        await self._add(t.variable_values, self.values.rows())
        await self._replace(
            t.variants, [self.state.variants[k].to_row() for k in sorted(self.dirty_variants)]
        )
        await self._replace(
            t.prompt_state, [self.state.prompts[k].to_row() for k in sorted(self.dirty_prompts)]
        )
        if self.decision_rows:
            await conn.execute(t.decisions.insert(), self.decision_rows)
        await self._write_versions()
        await self._replace(
            t.prompt_definitions, [self.definition_rows[k] for k in sorted(self.definition_rows)]
        )
        await self._replace(
            t.learner_counters,
            [{"name": n, "value": self.counters[n]} for n in sorted(self.dirty_counters)],
        )
        if self.outbox_new:
            await conn.execute(t.outbox.insert(), self.outbox_new)
        for chunk in _chunks(self.outbox_done):
            await conn.execute(_DELETE_OUTBOX, {"ids": chunk})
        await conn.execute(
            self.p.statement(
                "replace",
                t.projection_position,
                lambda: _upsert_replace(store, t.projection_position),
            ),
            {"consumer": self.p.consumer, "sequence": position},
        )

    async def _write_versions(self) -> None:
        """Record versions not seen before (a re-registration of one changes nothing)."""
        if not self.version_rows:
            return
        vv = t.variant_versions
        prompts = sorted({p for p, _, _ in self.version_rows})
        known = {
            (r.prompt_id, r.variant, r.version)
            for r in await self.conn.execute(
                select(vv.c.prompt_id, vv.c.variant, vv.c.version).where(
                    vv.c.prompt_id.in_(prompts)
                )
            )
        }
        rows = [row for key, row in sorted(self.version_rows.items()) if key not in known]
        if rows:
            await self.conn.execute(vv.insert(), rows)

    async def _expire_executions(self) -> None:
        """Delete raw executions past ``retention_days`` of event time; the aggregates
        stay. The clock is the stream's, so a replay deletes exactly the same rows."""
        if self.p.retention_ms <= 0:
            return
        cutoff = self.counters.get("clock_ms", 0) - self.p.retention_ms
        if cutoff > 0:
            ex = t.executions
            await self.conn.execute(delete(ex).where(ex.c.occurred_ms < cutoff))

    async def _expire_pending(self) -> None:
        """Drop (and count) stored feedback that waited longer than ``feedback_wait_s``."""
        cutoff = self.counters.get("clock_ms", 0) - self.p.feedback_wait_ms
        pf = t.pending_feedback
        expired = await self.conn.scalar(
            select(func.count()).select_from(pf).where(pf.c.occurred_ms < cutoff)
        )
        if expired:
            await self.conn.execute(delete(pf).where(pf.c.occurred_ms < cutoff))
            self._count("feedback_dropped", int(expired))

    async def _add(self, table: Any, rows: list[dict[str, Any]]) -> None:
        """Upsert counters: insert, or add to the existing row's counters."""
        if rows:
            store = self.p.store
            stmt = self.p.statement("add", table, lambda: _upsert_add(store, table))
            await self.conn.execute(stmt, rows)

    async def _replace(self, table: Any, rows: list[dict[str, Any]]) -> None:
        """Upsert whole rows: insert, or overwrite every non-key column."""
        if rows:
            store = self.p.store
            stmt = self.p.statement("replace", table, lambda: _upsert_replace(store, table))
            await self.conn.execute(stmt, rows)


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
    )
    .where(_pf.c.execution_id.in_(bindparam("ids", expanding=True)))
    .order_by(_pf.c.sequence)
)
_UPDATE_REWARD = (
    update(_e)
    .where(_e.c.execution_id == bindparam("b_id"))
    .values(
        feedback_sequence=bindparam("b_seq"),
        feedback_value=bindparam("b_value"),
        reward=bindparam("b_reward"),
    )
)
_DELETE_PENDING = delete(_pf).where(_pf.c.execution_id.in_(bindparam("ids", expanding=True)))
_DELETE_OUTBOX = delete(t.outbox).where(t.outbox.c.event_id.in_(bindparam("ids", expanding=True)))


def _rekey(table: dict[Any, Any], prompt_id: str, name: str, archived: str) -> None:
    """Move a batch's accumulators keyed ``(prompt, name, ...)`` to ``(prompt, archived, ...)``."""
    for key in [k for k in table if k[0] == prompt_id and k[1] == name]:
        table[(prompt_id, archived, *key[2:])] = table.pop(key)


def _named(acc: list[int]) -> dict[str, int]:
    return dict(zip(AGGREGATE_COLUMNS, acc, strict=True))


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]
