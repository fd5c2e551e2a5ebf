"""The decision log: one row per promotion, rollback, retirement, pause or rejection.

Rows are written when a decision event is *projected* from the stream, not when the
learner decides it, so the log is what the stream says happened, in stream order,
and replay rebuilds it exactly.
"""

from __future__ import annotations

from typing import Any

from promptlab.events.models import (
    BaseEvent,
    CommandRejected,
    Evidence,
    ExplorationPaused,
    ExplorationResumed,
    VariantLifecycleChanged,
    VariantPromoted,
    VariantRetired,
    VariantRolledBack,
)
from promptlab.events.snapshots import DecisionRecord


def _evidence_words(evidence: Evidence | None) -> str:
    if evidence is None:
        return ""
    parts = []
    if evidence.p_better is not None:
        parts.append(f"P(better)={evidence.p_better:.3f}")
    if evidence.lift is not None:
        parts.append(f"lift={evidence.lift:+.3f}")
    if evidence.p_value is not None:
        parts.append(f"p={evidence.p_value:.3g}")
    parts.append(f"n={evidence.challenger.n} vs {evidence.champion.n}")
    return ", ".join(parts)


def summarize(event: BaseEvent) -> tuple[str | None, str | None, str, str, str]:
    """``(variant, previous, reason, actor, summary)`` of a decision event."""
    match event:
        case VariantPromoted():
            words = _evidence_words(event.evidence)
            text = f"promoted {event.variant} over {event.previous_champion} ({event.reason})"
            return (
                event.variant,
                event.previous_champion,
                event.reason,
                event.actor,
                text + (f": {words}" if words else ""),
            )
        case VariantRolledBack():
            words = _evidence_words(event.evidence)
            text = f"rolled back {event.variant}, restored {event.restored} ({event.reason})"
            return (
                event.variant,
                event.restored,
                event.reason,
                event.actor,
                text + (f": {words}" if words else ""),
            )
        case VariantRetired():
            words = _evidence_words(event.evidence)
            return (
                event.variant,
                None,
                "auto",
                event.actor,
                f"retired {event.variant}: {event.reason}" + (f" ({words})" if words else ""),
            )
        case ExplorationPaused():
            return (
                None,
                None,
                "manual",
                event.actor,
                "exploration paused" + (f": {event.reason}" if event.reason else ""),
            )
        case ExplorationResumed():
            return (
                None,
                None,
                "manual",
                event.actor,
                "exploration resumed" + (f": {event.reason}" if event.reason else ""),
            )
        case VariantLifecycleChanged():
            return (
                event.variant,
                None,
                "manual",
                event.actor,
                f"{event.variant} {event.previous} -> {event.status}"
                + (f": {event.reason}" if event.reason else ""),
            )
        case CommandRejected():
            return None, None, "rejected", "learner", f"command rejected: {event.reason}"
    return None, None, "", "", type(event).__name__


def decision_record(sequence: int, event: Any) -> dict[str, Any]:
    """The ``decisions`` table row of a decision event at ``sequence``."""
    variant, previous, reason, actor, summary = summarize(event)
    evidence = getattr(event, "evidence", None)
    return {
        "sequence": sequence,
        "event_id": event.event_id,
        "prompt_id": event.prompt_id,
        "type": event.type,
        "variant": variant,
        "previous": previous,
        "reason": reason,
        "actor": actor,
        "summary": summary,
        "evidence": evidence.model_dump_json() if evidence is not None else None,
        "occurred_ms": int(event.occurred_at.timestamp() * 1000),
    }


def to_record(row: dict[str, Any]) -> DecisionRecord:
    """A ``decisions`` row as the :class:`DecisionRecord` the stats snapshot carries."""
    from datetime import UTC, datetime

    return DecisionRecord(
        sequence=row["sequence"],
        type=row["type"],
        variant=row["variant"],
        previous=row["previous"],
        reason=row["reason"],
        summary=row["summary"],
        occurred_at=datetime.fromtimestamp(row["occurred_ms"] / 1000, UTC).isoformat(),
    )
