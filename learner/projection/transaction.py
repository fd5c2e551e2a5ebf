"""The exactly-once projection: a batch of stream deliveries into SQL in one transaction.

:meth:`Projection.apply` writes everything a batch changes *and* the new tracking
position in a single transaction. Sequences at or below the position are skipped, so a
redelivered batch or a duplicate changes nothing; the caller acks only after it returns.
Every event type is either applied or explicitly ignored, and the position advances
past all of them, including undecodable ones (returned as dead letters for the caller
to publish).

This module is the transaction's frame: the position, the state it loads, the
per-prompt settings it applies, and :func:`_run`, which reads what the batch refers to
(:mod:`~learner.projection.reads`), hands each event to its handler
(:mod:`learner.projection.handlers`) and writes the result
(:mod:`~learner.projection.writes`). The working set in between is a
:class:`~learner.projection.batch.Batch`: aggregates are summed in memory per batch and
written as integer upserts, which keeps replay fast and makes totals independent of
where batch boundaries fall.

Nothing here reads the wall clock or draws random numbers: time comes from event
``occurred_at`` fields, so ``promptlab replay`` rebuilds identical tables. "Now" is the
newest ``occurred_at`` seen so far in stream order (``clock_ms``), which is how long
feedback waits for its execution (``feedback_wait_s``) is measured: the same on replay
whatever the batch boundaries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from promptlab.events.bus import Delivery
from promptlab.events.models import (
    BaseEvent,
    CommandRejected,
    EvaluationFailed,
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
)
from promptlab.learner.projection.batch import Batch, BatchResult, DeadLetter
from promptlab.learner.projection.definitions import check_off_the_loop, specs_from_rows
from promptlab.learner.projection.handlers.decisions import command, decision
from promptlab.learner.projection.handlers.executions import execution_completed
from promptlab.learner.projection.handlers.feedback import feedback_received
from promptlab.learner.projection.handlers.registrations import (
    prompt_registered,
    variant_registered,
)
from promptlab.learner.projection.reads import prefetch
from promptlab.learner.projection.reward import RewardRule, effective_promotion, rule_from_spec
from promptlab.learner.projection.rows import LearnerState, PromptRow, VariantRow
from promptlab.learner.projection.writes import write
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.store import Store
from promptlab.prompts.config import PromotionConfig
from promptlab.prompts.sections import DEFAULT_MAX_EXAMPLES
from promptlab.prompts.spec import PromptSpec

log = logging.getLogger(__name__)


class Projection:
    """Applies stream deliveries to a :class:`Store`, exactly once per sequence.

    ``rewards`` maps prompt ids to their :class:`RewardRule` (unknown prompts accept
    any feedback name); ``promotion`` returns a prompt's effective promotion config
    (for the probation length); ``examples_cap`` each prompt's ``[learning]
    max_examples`` (None: not known from a file). Prompts defined at run time (``PromptRegistered``)
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
        examples_cap: Callable[[str], int | None] | None = None,
    ) -> None:
        self.store = store
        self._examples_cap = examples_cap or (lambda _prompt: None)
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
        await check_off_the_loop(deliveries)
        try:
            async with self.store.begin() as conn:
                stored = await conn.scalar(
                    select(t.projection_position.c.sequence).where(
                        t.projection_position.c.consumer == self.consumer
                    )
                )
                if not self._loaded or int(stored or 0) != self.position:
                    await self._load(conn)  # someone else wrote (or first batch): resync
                batch = Batch(self, conn)
                result = await _run(batch, sorted(deliveries, key=lambda d: d.sequence))
        except BaseException:
            self._loaded = False  # memory may hold half a batch: reload before the next
            raise
        self.position = result.position
        return result

    def rule(self, prompt_id: str) -> RewardRule:
        """A prompt's reward rule: from the caller's ``rewards``, else its run-time
        definition, else one that accepts any feedback name."""
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

    def examples_cap(self, prompt_id: str) -> int:
        """How many production examples a prompt keeps: its file's (the caller's
        function), else its run-time definition's ``[learning] max_examples``, else
        the default."""
        known = self._examples_cap(prompt_id)
        if known is not None:
            return known
        spec = self.defined.get(prompt_id)
        return spec.learning.max_examples if spec is not None else DEFAULT_MAX_EXAMPLES

    def define(self, spec: PromptSpec) -> None:
        """Take a prompt's run-time definition (its reward rule applies from now on)."""
        self.defined[spec.id] = spec
        self._defined_rules[spec.id] = rule_from_spec(spec)

    def define_all(self, specs: Mapping[str, PromptSpec]) -> None:
        """Replace every run-time definition (as :meth:`load` reads them)."""
        self.defined, self._defined_rules = {}, {}
        for spec in specs.values():
            self.define(spec)


async def _run(b: Batch, deliveries: Sequence[Delivery]) -> BatchResult:
    """Skip what was applied before, apply the rest in stream order, write it all."""
    position = b.p.position
    fresh: list[Delivery] = []
    for d in deliveries:
        if d.sequence <= position:
            b.result.skipped += 1
            continue
        position = d.sequence
        fresh.append(d)
    await prefetch(b, fresh)
    for d in fresh:
        if d.event is None:
            reason = d.error or "undecodable event"
            log.warning("dead-lettering stream sequence %d: %s", d.sequence, reason)
            b.result.dead_letters.append(DeadLetter(d.sequence, d.data, reason))
            b.count("dead_letters")
            continue
        _apply(b, d.sequence, d.event)
        b.result.applied += 1
    b.result.position = position
    if position > b.p.position:
        await write(b, position)
    return b.result


def _apply(b: Batch, seq: int, ev: BaseEvent) -> None:
    """Hand one decoded event to its handler (or ignore it: the position advances anyway)."""
    match ev:
        case ExecutionCompleted():
            execution_completed(b, seq, ev)
        case FeedbackReceived():
            feedback_received(b, seq, ev)
        case EvaluationFailed():
            # Counted, never a reward: an evaluation error is not a zero.
            b.count("evaluation_errors" if ev.source == "live" else "evaluation_errors_offline")
        case VariantRegistered():
            variant_registered(b, seq, ev)
        case PromptRegistered():
            prompt_registered(b, seq, ev)
        case (
            VariantPromoted()
            | VariantRolledBack()
            | VariantRetired()
            | ExplorationPaused()
            | ExplorationResumed()
            | VariantLifecycleChanged()
            | CommandRejected()
        ):
            decision(b, seq, ev)
        case PromoteCommand() | RollbackCommand() | PauseCommand() | LifecycleCommand():
            command(b, seq, ev)
        case _:
            # A type this learner does not project: the position still advances.
            log.debug("ignoring %s at sequence %d", type(ev).__name__, seq)
