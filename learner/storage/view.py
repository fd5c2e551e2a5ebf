"""One prompt as the policy, the snapshots and ``promptlab stats`` see it.

:func:`load_view` reads a prompt's state, variants, counters and latency percentiles
from the store into a frozen :class:`PromptView`. With an ``evaluation_window`` in the
prompt's promotion config, the counters cover only the executions of the last window,
taken from the minute buckets; "now" is the newest event time of the prompt, never the
learner's clock, so a replay sees the same window.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from promptlab.learner.storage.schema import PROBATION_COUNTERS
from promptlab.learner.storage.store import ArmTotals, Store
from promptlab.prompts.config import PromotionConfig

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$")
_MINUTES = {"m": 1, "min": 1, "h": 60, "d": 1440, "w": 10080}


def window_minutes(window: str | None) -> int | None:
    """``"1d"`` -> 1440, ``"6h"`` -> 360, ``"30m"`` -> 30; None -> None (all data)."""
    if window is None:
        return None
    match = _WINDOW.match(window)
    if match is None:
        raise ValueError(f"evaluation_window {window!r}: use a number and m, h, d or w (e.g. '1d')")
    return max(1, round(float(match.group(1)) * _MINUTES[match.group(2)]))


@dataclass(frozen=True, slots=True)
class ArmView:
    """One variant: what it is and how it did."""

    variant: str
    status: str
    model: str = ""
    version: str = ""
    """Content hash of the variant's current version."""
    lifecycle: str = "active"
    """The author's lifecycle; only ``active`` arms (and the champion) are decided on."""
    origin: str = "config"
    parent: str | None = None
    strategy: str | None = None
    totals: ArmTotals | None = None
    """Counters the decisions use (the evaluation window, or all data)."""
    lifetime: ArmTotals | None = None
    """Counters over all data."""
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None

    @property
    def n(self) -> int:
        """Rewarded executions (the sample size of the reward)."""
        return self.totals.rewarded if self.totals else 0

    @property
    def successes(self) -> float:
        return self.totals.reward_sum if self.totals else 0.0

    @property
    def failures(self) -> float:
        return self.n - self.successes


@dataclass(frozen=True, slots=True)
class PromptView:
    """A prompt's state and arms at one stream position."""

    prompt_id: str
    champion: str
    paused: bool
    previous_champion: str | None
    """The champion before the last promotion (None after a rollback)."""
    probation_variant: str | None
    """The champion while its status is ``probation``."""
    probation_since: ArmTotals | None
    """The champion's counters since its promotion (None without a promotion on record)."""
    probation_baseline: ArmTotals | None
    """``previous_champion``'s counters frozen at that promotion."""
    last_sequence: int
    last_event_ms: int
    config: PromotionConfig
    exploration_cap: float = 0.2
    exploration_floor: float = 0.05
    """``routing.exploration_floor``: the least share the router gives a live arm (lowered
    to ``exploration_cap / (2 k)`` with ``k`` challengers)."""
    arms: dict[str, ArmView] = field(default_factory=dict)
    """Registered variants by name, in registration order."""
    window_start_minute: int | None = None
    champion_changes: tuple[tuple[int, str, str, str], ...] = ()
    """Promotions and rollbacks: ``(sequence, type, new champion, reason)``."""
    registered: dict[str, int] = field(default_factory=dict)
    """Each variant's registration sequence (empty: a view built without history)."""
    tests: dict[str, tuple[int, list[float]]] = field(default_factory=dict)
    """Each challenger's running same-period test: ``(e-LOND number, state)``, the state
    as the projection keeps it (:mod:`learner.projection.evidence`)."""
    probation_steps: int = 0
    """Rewarded calls of the prompt since the last promotion, while its probation ran."""
    probation_test: list[float] = field(default_factory=list)
    """The probation's running test, as the projection keeps it."""

    @property
    def active(self) -> list[ArmView]:
        """Arms that may still be routed and decided on: not retired, and active (a
        deprecated or archived variant keeps its statistics but competes no more)."""
        return [
            a
            for a in self.arms.values()
            if a.status != "retired" and (a.lifecycle == "active" or a.variant == self.champion)
        ]


async def load_view(
    store: Store,
    prompt_id: str,
    config: PromotionConfig,
    *,
    exploration_cap: float = 0.2,
    exploration_floor: float = 0.05,
) -> PromptView | None:
    """The view of one prompt, or None while it has no champion (nothing registered)."""
    row = await store.prompt_row(prompt_id)
    if row is None or row["champion"] is None:
        return None
    minutes = window_minutes(config.evaluation_window)
    since = None if minutes is None else int(row["last_event_ms"]) // 60_000 - minutes + 1
    lifetime = await store.arm_totals(prompt_id)
    windowed = lifetime if since is None else await store.arm_totals(prompt_id, since_minute=since)
    latency = await store.latency_percentiles(prompt_id)
    arms = {}
    variants = await store.variant_rows(prompt_id)
    for v in variants:
        name = v["variant"]
        p50, p95, p99 = latency.get(name, [None, None, None])
        arms[name] = ArmView(
            variant=name,
            status=v["status"],
            model=v["model"],
            version=v["version"],
            lifecycle=v.get("lifecycle", "active") or "active",
            origin=v["origin"],
            parent=v["parent"],
            strategy=v["strategy"],
            totals=windowed.get(name, ArmTotals(prompt_id, name)),
            lifetime=lifetime.get(name, ArmTotals(prompt_id, name)),
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            latency_p99_ms=p99,
        )
    return PromptView(
        prompt_id=prompt_id,
        champion=row["champion"],
        paused=bool(row["paused"]),
        previous_champion=row["previous_champion"],
        probation_variant=row["probation_variant"],
        probation_since=_probation_totals(row, "probation", row["champion"]),
        probation_baseline=_probation_totals(row, "baseline", row["previous_champion"]),
        last_sequence=int(row["last_sequence"]),
        last_event_ms=int(row["last_event_ms"]),
        config=config,
        exploration_cap=exploration_cap,
        exploration_floor=exploration_floor,
        arms=arms,
        window_start_minute=since,
        champion_changes=tuple(await store.champion_changes(prompt_id)),
        registered={v["variant"]: int(v["registered_sequence"]) for v in variants},
        tests={
            v["variant"]: (int(v["test_number"]), _floats(v.get("test_state")))
            for v in variants
            if v.get("test_number")
        },
        probation_steps=int(row.get("probation_steps") or 0),
        probation_test=_floats(row.get("probation_test")),
    )


def _probation_totals(row: dict[str, Any], side: str, variant: str | None) -> ArmTotals | None:
    if row["previous_champion"] is None or variant is None:
        return None
    counters = {name: row[f"{side}_{name}"] for name in PROBATION_COUNTERS}
    return ArmTotals.from_mapping(row["prompt_id"], variant, counters)


def _floats(raw: object) -> list[float]:
    """A stored test state (JSON list of floats), or an empty list."""
    if not isinstance(raw, str) or not raw:
        return []
    values = json.loads(raw)
    return [float(v) for v in values] if isinstance(values, list) else []
