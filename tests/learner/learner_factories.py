"""Event factories and small drivers shared by the learner tests.

Times are fixed (no wall clock), so projections built from these events are
reproducible; ``at(seconds)`` gives an ``occurred_at`` that many seconds after T0.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from promptlab.events.bus import Delivery
from promptlab.events.models import (
    BaseEvent,
    ExecutionCompleted,
    FeedbackReceived,
    VariantRegistered,
    encode,
)

T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def registered(
    prompt: str = "greet", variant: str = "a", *, champion: bool = False, **kw: Any
) -> VariantRegistered:
    return VariantRegistered(
        prompt_id=prompt,
        variant=variant,
        version=kw.pop("version", f"v-{variant}"),
        model="simulated/echo",
        template=kw.pop("template", "Hello {{ name }}"),
        champion=champion,
        occurred_at=kw.pop("occurred_at", T0),
        **kw,
    )


def execution(
    execution_id: str, prompt: str = "greet", variant: str = "a", *, seconds: float = 0.0, **kw: Any
) -> ExecutionCompleted:
    fields: dict[str, Any] = {
        "model": "simulated/echo",
        "provider": "simulated",
        "latency_ms": 100.0,
        "input_tokens": 10,
        "output_tokens": 20,
        "cost_usd": 0.001,
        "subject": "user-1",
    }
    fields.update(kw)
    return ExecutionCompleted(
        execution_id=execution_id,
        prompt_id=prompt,
        variant=variant,
        occurred_at=at(seconds),
        **fields,
    )


def feedback(
    execution_id: str, value: bool | float = True, *, name: str = "thumbs_up", seconds: float = 1.0
) -> FeedbackReceived:
    return FeedbackReceived(
        execution_id=execution_id, name=name, value=value, occurred_at=at(seconds)
    )


def correction(
    execution_id: str, text: str, *, seconds: float, comment: str | None = None
) -> FeedbackReceived:
    """A reviewer's answer for a call (a ``demonstration`` feedback)."""
    return FeedbackReceived(
        execution_id=execution_id,
        name="demonstration",
        value=True,
        text=text,
        comment=comment,
        occurred_at=at(seconds),
    )


def deliveries(events: Sequence[BaseEvent], start: int = 1) -> list[Delivery]:
    """Deliveries as a consumer would hand them out, numbered from ``start``."""
    return [Delivery(sequence=start + i, event=e, data=encode(e)) for i, e in enumerate(events)]
