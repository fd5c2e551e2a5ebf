"""In-memory mirrors of the ``prompt_state`` and ``variants`` rows.

The projection keeps every prompt's row and every variant's row in memory (there are
few of them), changes them while it applies a batch, and writes the changed ones back
in the batch's transaction. Commands are judged against them at the exact stream
position where the command appears.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from events.kinds import VariantLifecycle, VariantStatus
from learner.storage.schema import PROBATION_COUNTERS


@dataclass(slots=True)
class PromptRow:
    """Mutable copy of one ``prompt_state`` row."""

    prompt_id: str
    champion: str | None = None
    champion_explicit: bool = False
    paused: bool = False
    previous_champion: str | None = None
    probation_variant: str | None = None
    probation_steps: int = 0
    probation_rewarded: int = 0
    probation_reward_micro: int = 0
    probation_reward_sq_micro: int = 0
    probation_executions: int = 0
    probation_errors: int = 0
    probation_cost_nano: int = 0
    baseline_rewarded: int = 0
    baseline_reward_micro: int = 0
    baseline_reward_sq_micro: int = 0
    baseline_executions: int = 0
    baseline_errors: int = 0
    baseline_cost_nano: int = 0
    last_decision_sequence: int = 0
    tests_started: int = 0
    last_sequence: int = 0
    last_event_ms: int = 0

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    def start_probation(self, baseline: dict[str, int]) -> None:
        """A promotion: zero the champion's counters since, freeze the baseline's."""
        for name in PROBATION_COUNTERS:
            setattr(self, f"probation_{name}", 0)
            setattr(self, f"baseline_{name}", int(baseline.get(name, 0)))

    def clear_probation(self) -> None:
        """A rollback: no probation record any more."""
        self.start_probation({})


@dataclass(slots=True)
class VariantRow:
    """Mutable copy of one ``variants`` row."""

    prompt_id: str
    variant: str
    version: str
    model: str
    origin: str = "config"
    parent: str | None = None
    strategy: str | None = None
    status: VariantStatus = "challenger"
    registered_sequence: int = 0
    lifecycle: VariantLifecycle = "active"
    test_number: int = 0
    """e-LOND number of the challenger's running same-period test (0: none)."""
    test_start: int = 0
    """Stream sequence after which that test's steps count."""

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class LearnerState:
    """Every prompt's and variant's row, as the projection last committed them."""

    prompts: dict[str, PromptRow] = field(default_factory=dict)
    variants: dict[tuple[str, str], VariantRow] = field(default_factory=dict)

    def variants_of(self, prompt_id: str) -> dict[str, VariantRow]:
        """Variants of one prompt by name, in registration order."""
        rows = sorted(
            (v for (p, _), v in self.variants.items() if p == prompt_id),
            key=lambda v: (v.registered_sequence, v.variant),
        )
        return {v.variant: v for v in rows}
