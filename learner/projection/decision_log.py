"""The decision log: one row per promotion, rollback, retirement, pause or rejection.

Rows are written when a decision event is *projected* from the stream, not when the
learner decides it, so the log is what the stream says happened, in stream order,
and replay rebuilds it exactly.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


class Summary(NamedTuple):
    """What the log says of one decision event."""

    variant: str | None
    previous: str | None
    reason: str
    actor: str
    text: str


def _then(text: str, more: str | None, form: str = ": {}") -> str:
    """``text``, then ``more`` in ``form`` when there is more to say."""
    return text + form.format(more) if more else text


def summarize(event: BaseEvent) -> Summary:
    """The log's words for a decision event."""
    match event:
        case VariantPromoted():
            text = f"promoted {event.variant} over {event.previous_champion} ({event.reason})"
            words = _evidence_words(event.evidence)
            previous = event.previous_champion
            return Summary(event.variant, previous, event.reason, event.actor, _then(text, words))
        case VariantRolledBack():
            text = f"rolled back {event.variant}, restored {event.restored} ({event.reason})"
            words = _evidence_words(event.evidence)
            return Summary(
                event.variant, event.restored, event.reason, event.actor, _then(text, words)
            )
        case VariantRetired():
            text = f"retired {event.variant}: {event.reason}"
            words = _evidence_words(event.evidence)
            return Summary(event.variant, None, "auto", event.actor, _then(text, words, " ({})"))
        case ExplorationPaused() | ExplorationResumed():
            done = "paused" if isinstance(event, ExplorationPaused) else "resumed"
            return Summary(
                None, None, "manual", event.actor, _then(f"exploration {done}", event.reason)
            )
        case VariantLifecycleChanged():
            text = f"{event.variant} {event.previous} -> {event.status}"
            return Summary(event.variant, None, "manual", event.actor, _then(text, event.reason))
        case CommandRejected():
            return Summary(None, None, "rejected", "learner", f"command rejected: {event.reason}")
    return Summary(None, None, "", "", type(event).__name__)


def decision_record(sequence: int, event: Any) -> dict[str, Any]:
    """The ``decisions`` table row of a decision event at ``sequence``."""
    said = summarize(event)
    evidence = getattr(event, "evidence", None)
    return {
        "sequence": sequence,
        "event_id": event.event_id,
        "prompt_id": event.prompt_id,
        "type": event.type,
        "variant": said.variant,
        "previous": said.previous,
        "reason": said.reason,
        "actor": said.actor,
        "summary": said.text,
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
