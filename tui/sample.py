"""Deterministic demo-like data for screenshots and tests: what a running lab looks like.

The data is ``tui/sample.json``: three prompts of a simulated support bot with fixed
timestamps, so an SVG or a snapshot test renders the same today and next year.
Everything in it is labelled ``simulated/``. This module only reads and validates it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from typing import Any

from pydantic import TypeAdapter

from promptlab.events import BaseEvent, Bucket, Event, EventBus
from promptlab.events.snapshots import AnalyticsSnapshot, RoutingSnapshot, StatsSnapshot

T0 = datetime(2025, 5, 14, 14, 0, 0, tzinfo=UTC)
"""The fixed "now" of the sample: every timestamp in it is relative to it."""

_EVENTS: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


@cache
def _data() -> dict[str, Any]:
    text = files("promptlab.tui").joinpath("sample.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def stats_snapshots() -> list[StatsSnapshot]:
    """The learner's stats snapshot of each sample prompt."""
    return [StatsSnapshot.model_validate(s) for s in _data()["stats"]]


def routing_snapshots() -> list[RoutingSnapshot]:
    """Routing snapshots consistent with :func:`stats_snapshots`."""
    return [RoutingSnapshot.model_validate(r) for r in _data()["routing"]]


def analytics_snapshots() -> list[AnalyticsSnapshot]:
    """Recent hours and days of the sample prompts that have them (the analytics tab)."""
    return [AnalyticsSnapshot.model_validate(a) for a in _data()["analytics"]]


def history() -> list[BaseEvent]:
    """The events a TUI reads as history: registrations, a promotion, recent calls."""
    return list(_EVENTS.validate_python(_data()["history"]))


async def load(bus: EventBus) -> None:
    """Put the sample on ``bus``: snapshots in KV, history on the stream."""
    for stats in stats_snapshots():
        await bus.kv_put(str(Bucket.STATS), stats.prompt_id, stats.encode())
    for routing in routing_snapshots():
        await bus.kv_put(str(Bucket.ROUTING), routing.prompt_id, routing.encode())
    for analytics in analytics_snapshots():
        await bus.kv_put(str(Bucket.ANALYTICS), analytics.prompt_id, analytics.encode())
    await bus.publish_many(history())
