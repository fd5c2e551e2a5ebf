"""What the TUI knows about one prompt, live: :class:`LivePrompt` and its rows.

A plain model (no Textual, no bus), filled by :class:`tui.state.LabState` as snapshots
and events arrive; the views read it to draw the overview and the detail screen.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from promptlab.events import Evidence, VariantRegistered
from promptlab.events.snapshots import (
    AnalyticsSnapshot,
    DecisionRecord,
    RoutingSnapshot,
    StatsSnapshot,
    VariantStats,
)

__all__ = [
    "FEED_SIZE",
    "LIVE_DECISIONS_KEPT",
    "DecisionEntry",
    "ExecutionRow",
    "LivePrompt",
    "iso_text",
]

FEED_SIZE = 60
"""Recent executions kept per prompt: a screenful, with room to scroll a little."""
LIVE_DECISIONS_KEPT = 50
"""Decision events kept per prompt beside the snapshot's own bounded log."""


@dataclass(slots=True)
class ExecutionRow:
    """One execution in the live feed; ``feedback`` fills in when the app scores it."""

    execution_id: str
    variant: str
    status: str
    latency_ms: float
    cost_usd: float
    tokens: int
    occurred_at: datetime
    feedback: dict[str, bool | float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DecisionEntry:
    """A promotion, rollback, retirement, pause or refusal, as the log shows it."""

    kind: str
    """"promoted", "rolled back", "retired", "paused", "resumed", "rejected" or the raw type."""
    variant: str | None
    previous: str | None
    occurred_at: str
    """ISO timestamp from the event (sorting and display; never compared with now)."""
    summary: str
    actor: str = ""
    evidence: Evidence | None = None


@dataclass(slots=True)
class LivePrompt:
    """What the TUI knows about one prompt, live: snapshots, templates, recent calls.

    (Not the learner's ``PromptState``, which is the policy's input.)
    """

    prompt_id: str
    stats: StatsSnapshot | None = None
    routing: RoutingSnapshot | None = None
    analytics: AnalyticsSnapshot | None = None
    """Recent hours and days per variant (the analytics tab), when the learner wrote them."""
    templates: dict[str, VariantRegistered] = field(default_factory=dict)
    """Latest registration of each variant: its template, model and lineage."""
    versions: dict[str, list[VariantRegistered]] = field(default_factory=dict)
    """Every distinct version of each variant seen, oldest first (the template tab
    steps through them)."""
    executions: deque[ExecutionRow] = field(default_factory=lambda: deque(maxlen=FEED_SIZE))
    live_decisions: dict[str, DecisionEntry] = field(default_factory=dict)
    """Decision events seen on the bus, by event id (they carry the full evidence)."""

    # ------------------------------------------------------------------ derived views

    @property
    def champion(self) -> str | None:
        if self.stats is not None:
            return self.stats.champion
        if self.routing is not None:
            return self.routing.champion
        for name, registered in self.templates.items():
            if registered.champion:
                return name
        return None

    @property
    def paused(self) -> bool:
        if self.routing is not None:
            return self.routing.paused
        return self.stats.paused if self.stats is not None else False

    def variants(self) -> list[VariantStats]:
        """Variants from the stats snapshot, or bare entries from registrations before it."""
        if self.stats is not None:
            return list(self.stats.variants)
        return [
            VariantStats(
                variant=name,
                status="champion" if reg.champion else "challenger",
                lifecycle=reg.status,
                model=reg.model,
                origin=reg.origin,
                parent=reg.parent,
                strategy=reg.strategy,
            )
            for name, reg in self.templates.items()
        ]

    def shown_variants(self, show_archived: bool) -> list[VariantStats]:
        """The variants a list shows: archived ones only when asked for."""
        return [v for v in self.variants() if show_archived or v.lifecycle != "archived"]

    def archived_count(self) -> int:
        return sum(1 for v in self.variants() if v.lifecycle == "archived")

    def variant(self, name: str) -> VariantStats | None:
        return next((v for v in self.variants() if v.variant == name), None)

    def decisions(self) -> list[DecisionEntry]:
        """The decision log, newest first: the snapshot's records, with evidence from events.

        The snapshot is the learner's authoritative, bounded log; events seen live carry
        the full :class:`Evidence` and may be newer than the last snapshot. A record and an
        event describe the same decision when kind, variant and second match.
        """
        live = list(self.live_decisions.values())
        by_key = {_decision_key(e): e for e in live}
        merged: dict[tuple[str, str | None, str], DecisionEntry] = {}
        if self.stats is not None:
            for record in self.stats.decisions:
                entry = _from_record(record)
                key = _decision_key(entry)
                match = by_key.get(key)
                if match is not None and entry.evidence is None:
                    entry = DecisionEntry(
                        entry.kind,
                        entry.variant,
                        entry.previous,
                        entry.occurred_at,
                        entry.summary or match.summary,
                        entry.actor or match.actor,
                        match.evidence,
                    )
                merged[key] = entry
        for entry in live:
            merged.setdefault(_decision_key(entry), entry)
        return sorted(merged.values(), key=lambda e: e.occurred_at, reverse=True)

    def last_switch(self) -> DecisionEntry | None:
        """The newest promotion or rollback: the overview's "last decision" column."""
        return next((d for d in self.decisions() if d.kind in ("promoted", "rolled back")), None)


def _decision_key(entry: DecisionEntry) -> tuple[str, str | None, str]:
    return (entry.kind, entry.variant, entry.occurred_at[:19])


def _normalise_kind(kind: str) -> str:
    """Map the learner's record types ("variant.promoted", "promotion"...) to one word."""
    lowered = kind.lower()
    for needle, word in (
        ("promot", "promoted"),
        ("roll", "rolled back"),
        ("retir", "retired"),
        ("resum", "resumed"),
        ("paus", "paused"),
        ("reject", "rejected"),
    ):
        if needle in lowered:
            return word
    return kind


def _from_record(record: DecisionRecord) -> DecisionEntry:
    return DecisionEntry(
        kind=_normalise_kind(record.type),
        variant=record.variant,
        previous=record.previous,
        occurred_at=iso_text(record.occurred_at),
        summary=record.summary or record.reason,
    )


def iso_text(moment: datetime | str) -> str:
    """ISO text normalised so records and events compare at the same precision."""
    if isinstance(moment, datetime):
        return moment.isoformat()
    try:
        return datetime.fromisoformat(moment.replace("Z", "+00:00")).isoformat()
    except ValueError:
        return moment
