"""The working set of one projection transaction, and the small changes every handler makes.

A :class:`Batch` lives for one :meth:`~learner.projection.transaction.Projection.apply`.
It holds what the batch has read (executions its feedback refers to, early feedback,
committed counters a promotion needs), what it has summed in memory (arm counters,
minute buckets, the latency histogram, variable values: integer accumulators written as
upserts, so totals do not depend on where batch boundaries fall) and which mirrored
rows it changed. The handlers in :mod:`learner.projection.handlers` change it, one event
at a time; :mod:`learner.projection.reads` fills it before and
:mod:`learner.projection.writes` writes it after, in the same transaction.

The helpers here are the changes every kind of event makes (touch a prompt, add to an
arm, tick the event clock, count, set a variant's status), kept in one place so the
dirty sets that decide what is written stay right.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from promptlab.events.models import BaseEvent
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.rows import LearnerState, PromptRow
from promptlab.learner.projection.variables import ValueCounts
from promptlab.learner.storage.schema import AGGREGATE_COLUMNS
from promptlab.learner.storage.store import Store
from promptlab.prompts.config import PromotionConfig
from promptlab.prompts.spec import PromptSpec

CHUNK = 500  # ids per IN (...) query: well under every driver's parameter limit
N_AGG = len(AGGREGATE_COLUMNS)
EXECUTIONS, ERRORS, REWARDED, POSITIVE, REWARD, REWARD_SQ, COST, TOKENS, LATENCY = range(N_AGG)
"""Positions of :data:`~learner.storage.schema.AGGREGATE_COLUMNS` in an accumulator."""

PendingFeedback = tuple[int, str, bool | float, int, str | None, str | None]
"""Feedback waiting for its execution: ``(sequence, name, raw value, occurred_ms, text,
comment)`` (``text``: a correction's answer)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery the projection could not decode: publish it aside with the reason."""

    sequence: int
    data: bytes
    reason: str


@dataclass(slots=True)
class BatchResult:
    """What one :meth:`~learner.projection.transaction.Projection.apply` did."""

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

    def absorb(self, later: BatchResult) -> None:
        """Add what a later batch did (batches applied one after the other)."""
        self.position = later.position
        self.applied += later.applied
        self.skipped += later.skipped
        self.dead_letters += later.dead_letters
        self.touched |= later.touched
        self.outbox += later.outbox
        self.decisions += later.decisions


@dataclass(slots=True)
class Execution:
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
    """The row to insert when the execution arrived in this batch."""
    probability: float | None = None
    """The routing probability logged for the call (None: not routed or not logged)."""

    @property
    def rewarded(self) -> bool:
        return self.feedback_sequence is not None


class Owner(Protocol):
    """What a batch uses of the projection that runs it
    (:class:`~learner.projection.transaction.Projection`, which imports this module)."""

    store: Store
    consumer: str
    position: int
    state: LearnerState
    counters: dict[str, int]
    in_flight: dict[str, str]
    write_outbox: bool
    feedback_repeat: Literal["first", "last"]
    feedback_wait_ms: int
    retention_ms: int

    def statement(self, name: str, table: Any, build: Callable[[], Any]) -> Any: ...
    def rule(self, prompt_id: str) -> RewardRule: ...
    def promotion(self, prompt_id: str) -> PromotionConfig: ...
    def routing(self, prompt_id: str) -> tuple[float, float]: ...
    def examples_cap(self, prompt_id: str) -> int: ...
    def define(self, spec: PromptSpec) -> None: ...


def event_ms(event: BaseEvent) -> int:
    """An event's ``occurred_at`` in milliseconds since the epoch."""
    return int(event.occurred_at.timestamp() * 1000)


def named(acc: list[int]) -> dict[str, int]:
    """An accumulator as its ``AGGREGATE_COLUMNS`` values."""
    return dict(zip(AGGREGATE_COLUMNS, acc, strict=True))


def chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    """``items`` in slices of at most :data:`CHUNK`, for ``IN (...)`` statements."""
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


class Batch:
    """The working set of one transaction."""

    def __init__(self, projection: Owner, conn: AsyncConnection) -> None:
        self.p = projection
        self.conn = conn
        self.state = projection.state
        self.result = BatchResult(position=projection.position)
        self.execs: dict[str, Execution] = {}
        self.reward_updates: list[dict[str, Any]] = []
        self.pending_db: dict[str, list[PendingFeedback]] = {}
        """Stored feedback for executions arriving in this batch (see :mod:`~learner.projection.reads`)."""
        self.pending_new: dict[str, list[PendingFeedback]] = {}
        """Feedback of this batch whose execution has not arrived yet."""
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
        self.examples: dict[str, dict[str, Any]] = {}
        """New ``examples`` rows of this batch, by id (:mod:`~learner.projection.handlers.examples`)."""
        self.example_ids: set[str] = set()
        """Stored examples that feedback in this batch refers to."""
        self.example_rewards: list[dict[str, Any]] = []
        self.example_corrections: list[dict[str, Any]] = []
        """Changes to stored examples, in stream order."""

    def prompt(self, prompt_id: str, seq: int) -> PromptRow:
        """A prompt's row, created when new, marked changed at ``seq``."""
        row = self.state.prompts.get(prompt_id)
        if row is None:
            row = self.state.prompts[prompt_id] = PromptRow(prompt_id=prompt_id)
        row.last_sequence = seq
        self.dirty_prompts.add(prompt_id)
        self.result.touched.add(prompt_id)
        return row

    def arm(self, prompt_id: str, variant: str) -> list[int]:
        """This batch's all-time additions to an arm's counters."""
        acc = self.arms.get((prompt_id, variant))
        if acc is None:
            acc = self.arms[(prompt_id, variant)] = [0] * N_AGG
        return acc

    def minute(self, prompt_id: str, variant: str, minute: int) -> list[int]:
        """This batch's additions to one minute bucket of an arm."""
        key = (prompt_id, variant, minute)
        acc = self.minutes.get(key)
        if acc is None:
            acc = self.minutes[key] = [0] * N_AGG
        return acc

    def count(self, name: str, n: int = 1) -> None:
        """Add to one of ``learner_counters``."""
        self.counters[name] = self.counters.get(name, 0) + n
        self.dirty_counters.add(name)

    def tick(self, occurred_ms: int) -> int:
        """Advance the event-time clock; returns "now"."""
        now = self.counters.get("clock_ms", 0)
        if occurred_ms > now:
            self.counters["clock_ms"] = now = occurred_ms
            self.dirty_counters.add("clock_ms")
        return now

    def expired(self, feedback_ms: int) -> bool:
        """Has feedback sent at ``feedback_ms`` waited longer than ``feedback_wait_s``?"""
        return feedback_ms + self.p.feedback_wait_ms < self.counters.get("clock_ms", 0)

    def set_status(self, prompt_id: str, variant: str, status: str) -> None:
        """Set a variant's routing status (champion, challenger, ...), if it has a row."""
        row = self.state.variants.get((prompt_id, variant))
        if row is not None and row.status != status:
            row.status = status  # type: ignore[assignment]
            self.dirty_variants.add((prompt_id, variant))
