"""What ``promptlab demo`` reports: the decisions it saw arrive and its summary.

:class:`DecisionWatcher` collects promotions, rollbacks and retirements from the stream
as the learner applies them; :class:`DemoSummary` is the end of a run (``--json``
prints it) and :func:`render_summary` its words (the sample in the README is this
function's output).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from promptlab.events.bus import EventBus
from promptlab.events.models import BaseEvent, VariantPromoted, VariantRetired, VariantRolledBack


@dataclass
class DecisionSeen:
    """A learner decision as the demo saw it arrive on the stream."""

    type: str
    variant: str
    previous: str | None
    after_requests: int
    evidence: dict[str, Any] | None


@dataclass
class DemoSummary:
    """What ``promptlab demo`` prints at the end (``--json`` prints this)."""

    label: str
    seed: int
    requests: int
    ok: int
    errors: int
    hidden_quality: dict[str, float]
    truly_best: str
    final_champion: str | None
    promoted_truly_best: bool
    decisions: list[DecisionSeen] = field(default_factory=list)
    traffic_share: dict[str, float] = field(default_factory=dict)
    reward_per_call: float = 0.0
    equal_split_reward_per_call: float = 0.0
    reward_gain_vs_equal_split: float = 0.0
    """Expected thumbs-up gained over the run compared with a fixed equal split."""
    bred: list[dict[str, Any]] = field(default_factory=list)
    """Variants continuous breeding produced: lineage, offline check, calls served."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


class DecisionWatcher:
    """Collects promotions, rollbacks and retirements as the learner applies them."""

    def __init__(self, bus: EventBus, requests_done: Callable[[], int]) -> None:
        self.bus = bus
        self.requests_done = requests_done
        self.seen: list[DecisionSeen] = []
        self.champion: str | None = None

    def record(self, event: BaseEvent) -> None:
        if isinstance(event, VariantPromoted):
            self.champion = event.variant
            self.seen.append(
                DecisionSeen(
                    "promoted",
                    event.variant,
                    event.previous_champion,
                    self.requests_done(),
                    _evidence(event),
                )
            )
        elif isinstance(event, VariantRolledBack):
            self.champion = event.restored
            self.seen.append(
                DecisionSeen(
                    "rolled back",
                    event.variant,
                    event.restored,
                    self.requests_done(),
                    _evidence(event),
                )
            )
        elif isinstance(event, VariantRetired):
            self.seen.append(
                DecisionSeen("retired", event.variant, None, self.requests_done(), _evidence(event))
            )


def _evidence(event: VariantPromoted | VariantRolledBack | VariantRetired) -> dict[str, Any] | None:
    return event.evidence.model_dump(mode="json") if event.evidence else None


def describe(decision: DecisionSeen) -> str:
    """One line for a decision, with its evidence in numbers."""
    line = f"{decision.type} {decision.variant} after {decision.after_requests} requests"
    ev = decision.evidence
    if ev:
        ch, champ = ev["challenger"], ev["champion"]
        parts = [
            f"{ch['variant']} {ch['reward_mean']:.3f} (n={ch['n']}) vs {champ['variant']} {champ['reward_mean']:.3f} (n={champ['n']})"
        ]
        if ev.get("p_better") is not None:
            parts.append(f"P(better)={ev['p_better']:.3f}")
        if ev.get("p_value") is not None:
            parts.append(f"p={ev['p_value']:.4f}")
        if ev.get("lift") is not None:
            lift = f"lift {ev['lift']:+.3f}"
            if ev.get("lift_interval"):
                lift += f" [{ev['lift_interval']['low']:+.3f}, {ev['lift_interval']['high']:+.3f}]"
            parts.append(lift)
        line += ": " + ", ".join(parts)
    return line


def render_summary(summary: DemoSummary) -> str:
    """The human-readable end of a headless demo."""
    lines = [
        "",
        f"summary ({summary.label})",
        f"  requests: {summary.requests} ({summary.ok} ok, {summary.errors} errors)",
    ]
    promotions = [d for d in summary.decisions if d.type == "promoted"]
    if promotions:
        for d in promotions:
            lines.append(f"  {describe(d)}")
    else:
        lines.append("  no promotion (not enough evidence yet: try more --requests)")
    for d in summary.decisions:
        if d.type != "promoted":
            lines.append(f"  {describe(d)}")
    lines.append(
        f"  champion now: {summary.final_champion} (truly best: {summary.truly_best}) "
        + ("✓" if summary.promoted_truly_best else "✗")
    )
    lines.append(
        "  traffic share: " + ", ".join(f"{k} {v:.0%}" for k, v in summary.traffic_share.items())
    )
    for b in summary.bred:
        where = "entered live traffic" if b["entered_traffic"] else "kept out"
        lines.append(
            f"  bred {b['variant']} from {b['from']} by {b['strategy']} (SIMULATED mutator): "
            f"{where}, offline check {b['check']}; served {b['calls']} calls"
        )
    lines.append(
        f"  reward per call {summary.reward_per_call:.3f} vs {summary.equal_split_reward_per_call:.3f} with a fixed equal split: "
        f"{summary.reward_gain_vs_equal_split:+.0f} expected thumbs-up over the run"
    )
    return "\n".join(lines)
