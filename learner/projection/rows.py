"""In-memory mirrors of the ``prompt_state`` and ``variants`` rows.

The projection keeps every prompt's row and every variant's row in memory (there are
few of them), changes them while it applies a batch, and writes the changed ones back
in the batch's transaction. Commands are judged against them at the exact stream
position where the command appears.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from promptlab.events.kinds import VariantLifecycle, VariantStatus
from promptlab.learner.stats.etest import TEST_FIELDS
from promptlab.learner.storage.schema import PROBATION_COUNTERS


def new_test(tests: int = 1) -> list[float]:
    """The state of ``tests`` running tests with no step yet."""
    return [0.0] * (TEST_FIELDS * tests)


def decode_test(raw: object, tests: int) -> list[float]:
    """A stored test state (JSON; floats round-trip exactly), or a fresh one."""
    if isinstance(raw, list):
        return [float(v) for v in raw]
    if isinstance(raw, str) and raw:
        values = json.loads(raw)
        if isinstance(values, list) and len(values) == TEST_FIELDS * tests:
            return [float(v) for v in values]
    return new_test(tests)


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
    base_n: int = 0
    """Rewarded calls of the prompt so far (the baseline's count)."""
    base_sum: float = 0.0
    """Their rewards' sum: the next call's baseline is ``(0.5 + base_sum) / (1 + base_n)``."""
    probation_test: list[float] = field(default_factory=new_test)
    """The running probation test (:func:`learner.stats.etest.advance` layout)."""
    last_sequence: int = 0
    last_event_ms: int = 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PromptRow:
        fields = dict(row)
        fields["probation_test"] = decode_test(fields.get("probation_test"), 1)
        return cls(**fields)

    def to_row(self) -> dict[str, Any]:
        out = asdict(self)
        out["probation_test"] = json.dumps(self.probation_test)
        return out

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
    test_state: list[float] = field(default_factory=lambda: new_test(2))
    """The running promotion test and its futility twin
    (:func:`learner.stats.etest.advance` layout, one after the other)."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> VariantRow:
        fields = dict(row)
        fields["test_state"] = decode_test(fields.get("test_state"), 2)
        return cls(**fields)

    def to_row(self) -> dict[str, Any]:
        out = asdict(self)
        out["test_state"] = json.dumps(self.test_state)
        return out


@dataclass(slots=True)
class LearnerState:
    """Every prompt's and variant's row, as the projection last committed them."""

    prompts: dict[str, PromptRow] = field(default_factory=dict)
    variants: dict[tuple[str, str], VariantRow] = field(default_factory=dict)
    _by_prompt: dict[str, dict[str, VariantRow]] = field(default_factory=dict)
    _indexed: int = -1

    def variants_of(self, prompt_id: str) -> dict[str, VariantRow]:
        """Variants of one prompt by name, in registration order (asked at every
        rewarded call: indexed once per change in the number of rows; rows are only
        ever added, and a row's registration sequence never changes)."""
        if self._indexed != len(self.variants):
            index: dict[str, list[VariantRow]] = {}
            for (p, _), v in self.variants.items():
                index.setdefault(p, []).append(v)
            self._by_prompt = {
                p: {
                    v.variant: v
                    for v in sorted(rows, key=lambda v: (v.registered_sequence, v.variant))
                }
                for p, rows in index.items()
            }
            self._indexed = len(self.variants)
        return dict(self._by_prompt.get(prompt_id, {}))
