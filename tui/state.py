"""The TUI's plain model: what it knows about every prompt, fed by snapshots and events.

Nothing here touches Textual or the bus. :class:`tui.feed.Feed` calls the ``apply_*``
methods as data arrives (each is O(1), so 500 events/s cost little), and every change
bumps :attr:`LabState.revision`. Screens redraw on a timer only when the revision moved,
which is what coalesces a burst of events into a few redraws per second.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from promptlab.events import (
    BaseEvent,
    CommandRejected,
    Evidence,
    ExecutionCompleted,
    ExplorationPaused,
    ExplorationResumed,
    FeedbackReceived,
    KVEntry,
    VariantPromoted,
    VariantRegistered,
    VariantRetired,
    VariantRolledBack,
)
from promptlab.events.snapshots import (
    AnalyticsSnapshot,
    LearnerStatus,
    RoutingSnapshot,
    StatsSnapshot,
)
from promptlab.tui.live_prompt import (
    LIVE_DECISIONS_KEPT,
    DecisionEntry,
    ExecutionRow,
    LivePrompt,
    iso_text,
)

__all__ = ["DecisionEntry", "ExecutionRow", "LabState", "LivePrompt", "Notice", "Severity"]

Severity = Literal["information", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the operator should see as a toast (a refusal, a promotion)."""

    text: str
    severity: Severity = "information"
    title: str = ""


class LabState:
    """Every prompt's state plus the connection facts the status bar shows.

    Timestamps here are monotonic seconds passed in by the caller (never read inside),
    so tests and screenshots can freeze time.
    """

    def __init__(self) -> None:
        self.prompts: dict[str, LivePrompt] = {}
        self.revision = 0
        """Bumped on every change; screens redraw when it differs from what they drew."""
        self.events_seen = 0
        self.last_snapshot_at: float | None = None
        """Monotonic time the last stats snapshot arrived (None: never)."""
        self.last_traffic_at: float | None = None
        """Monotonic time the last execution or feedback arrived."""
        self.bad_snapshots = 0
        self.learner: LearnerStatus | None = None
        """The active learner's status (who holds the lease), when one has written it."""
        self.learner_seen_at: float | None = None
        self.pending: dict[str, str] = {}
        """Commands this TUI sent, by event id -> description, to word a refusal."""
        self.notices: deque[Notice] = deque(maxlen=20)
        self.show_archived = False
        """Whether the prompt and variant lists show archived variants (key ``a``)."""
        self._executions: dict[str, ExecutionRow] = {}
        self._kv_revisions: dict[tuple[str, str], int] = {}

    # ------------------------------------------------------------------ helpers

    def prompt(self, prompt_id: str) -> LivePrompt:
        """The state of ``prompt_id``, created on first mention."""
        state = self.prompts.get(prompt_id)
        if state is None:
            state = self.prompts[prompt_id] = LivePrompt(prompt_id)
        return state

    def sorted_prompts(self) -> list[LivePrompt]:
        return [self.prompts[key] for key in sorted(self.prompts)]

    def _changed(self) -> None:
        self.revision += 1

    def toggle_archived(self) -> bool:
        """Show archived variants in the lists, or hide them again; returns the new setting."""
        self.show_archived = not self.show_archived
        self._changed()
        return self.show_archived

    # ------------------------------------------------------------------ snapshots

    def apply_stats(self, entry: KVEntry, *, now: float) -> None:
        """A value of bucket ``promptlab_stats`` (key = prompt id) arrived."""
        if not self._newer("stats", entry):
            return
        self.last_snapshot_at = now
        if entry.value is None:
            if entry.key in self.prompts:
                self.prompts[entry.key].stats = None
            self._changed()
            return
        try:
            snapshot = StatsSnapshot.decode(entry.value)
        except ValueError:
            self.bad_snapshots += 1
            return
        self.prompt(snapshot.prompt_id).stats = snapshot
        self._changed()

    def apply_routing(self, entry: KVEntry) -> None:
        """A value of bucket ``promptlab_routing`` arrived (posteriors and pause state)."""
        if not self._newer("routing", entry):
            return
        if entry.value is None:
            if entry.key in self.prompts:
                self.prompts[entry.key].routing = None
            self._changed()
            return
        try:
            snapshot = RoutingSnapshot.decode(entry.value)
        except ValueError:
            self.bad_snapshots += 1
            return
        self.prompt(snapshot.prompt_id).routing = snapshot
        self._changed()

    def apply_analytics(self, entry: KVEntry) -> None:
        """A value of bucket ``promptlab_analytics`` arrived (the analytics tab's periods)."""
        if not self._newer("analytics", entry):
            return
        if entry.value is None:
            if entry.key in self.prompts:
                self.prompts[entry.key].analytics = None
            self._changed()
            return
        try:
            snapshot = AnalyticsSnapshot.decode(entry.value)
        except ValueError:
            self.bad_snapshots += 1
            return
        self.prompt(snapshot.prompt_id).analytics = snapshot
        self._changed()

    def _newer(self, bucket: str, entry: KVEntry) -> bool:
        """KV revisions only grow; a re-delivered older value (after a reconnect) is dropped."""
        key = (bucket, entry.key)
        if entry.revision <= self._kv_revisions.get(key, 0):
            return False
        self._kv_revisions[key] = entry.revision
        return True

    # ------------------------------------------------------------------ events

    def apply_variant(self, event: VariantRegistered) -> None:
        """A variant's content (an event, or the variants bucket): its templates."""
        prompt = self.prompt(event.prompt_id)
        prompt.templates[event.variant] = event
        seen = prompt.versions.setdefault(event.variant, [])
        if not any(v.version == event.version for v in seen):
            seen.append(event)
        self._changed()

    def apply_event(self, event: BaseEvent, *, now: float, live: bool = True) -> None:
        """One event from the bus. ``live=False`` for history: no toasts, no liveness."""
        self.events_seen += 1
        match event:
            case ExecutionCompleted():
                self._execution(event, now=now, live=live)
            case FeedbackReceived():
                self._feedback(event, now=now, live=live)
            case VariantRegistered():
                self.apply_variant(event)
            case VariantPromoted():
                summary = f"{event.variant} promoted over {event.previous_champion or '—'} ({event.reason})"
                self._decision(
                    event,
                    "promoted",
                    event.variant,
                    event.previous_champion,
                    summary,
                    event.actor,
                    event.evidence,
                )
                if live:
                    self.notices.append(
                        Notice(f"{event.prompt_id}: {summary}", "information", "Promotion")
                    )
            case VariantRolledBack():
                summary = f"{event.variant} rolled back, {event.restored} restored ({event.reason})"
                self._decision(
                    event,
                    "rolled back",
                    event.variant,
                    event.restored,
                    summary,
                    event.actor,
                    event.evidence,
                )
                if live:
                    self.notices.append(
                        Notice(f"{event.prompt_id}: {summary}", "warning", "Rollback")
                    )
            case VariantRetired():
                self._decision(
                    event,
                    "retired",
                    event.variant,
                    None,
                    f"{event.variant} retired: {event.reason}",
                    event.actor,
                    event.evidence,
                )
            case ExplorationPaused():
                self._decision(
                    event,
                    "paused",
                    None,
                    None,
                    f"exploration paused by {event.actor}" + _because(event.reason),
                    event.actor,
                )
            case ExplorationResumed():
                self._decision(
                    event,
                    "resumed",
                    None,
                    None,
                    f"exploration resumed by {event.actor}" + _because(event.reason),
                    event.actor,
                )
            case CommandRejected():
                what = self.pending.pop(event.command_id, None)
                self._decision(
                    event,
                    "rejected",
                    None,
                    None,
                    f"{what or 'command'} refused: {event.reason}",
                    "learner",
                )
                if live:
                    text = (
                        f"{what or 'A command on ' + event.prompt_id} was refused: {event.reason}"
                    )
                    self.notices.append(Notice(text, "error", "Command refused"))
            case _:
                pass  # commands and future event types: nothing to show.

    def _execution(self, event: ExecutionCompleted, *, now: float, live: bool) -> None:
        if event.prompt_id is None or event.source != "live":
            return  # unrouted pass-through calls and offline trials are not a prompt's traffic
        if live:
            self.last_traffic_at = now
        if event.execution_id in self._executions:
            return  # seen in history and again live
        prompt = self.prompt(event.prompt_id)
        feed = prompt.executions
        if len(feed) == feed.maxlen:
            self._executions.pop(feed[0].execution_id, None)
        row = ExecutionRow(
            execution_id=event.execution_id,
            variant=event.variant or "—",
            status=event.status,
            latency_ms=event.latency_ms,
            cost_usd=event.cost_usd,
            tokens=event.input_tokens + event.output_tokens,
            occurred_at=event.occurred_at,
        )
        feed.append(row)
        self._executions[row.execution_id] = row
        self._changed()

    def _feedback(self, event: FeedbackReceived, *, now: float, live: bool) -> None:
        if live:
            self.last_traffic_at = now
        row = self._executions.get(event.execution_id)
        if row is not None:
            row.feedback[event.name] = event.value
            self._changed()

    def _decision(
        self,
        event: BaseEvent,
        kind: str,
        variant: str | None,
        previous: str | None,
        summary: str,
        actor: str,
        evidence: Evidence | None = None,
    ) -> None:
        prompt_id: str = getattr(event, "prompt_id", "")
        log = self.prompt(prompt_id).live_decisions
        log[event.event_id] = DecisionEntry(
            kind, variant, previous, iso_text(event.occurred_at), summary, actor, evidence
        )
        while len(log) > LIVE_DECISIONS_KEPT:
            log.pop(next(iter(log)))
        self._changed()

    # ------------------------------------------------------------------ commands

    def command_sent(self, command_id: str, description: str) -> None:
        """Remember a command this TUI published, so its refusal can name it."""
        self.pending[command_id] = description
        while len(self.pending) > 100:
            self.pending.pop(next(iter(self.pending)))


def _because(reason: str) -> str:
    return f": {reason}" if reason else ""
