"""Snapshots the learner shares through JetStream KV (one key per prompt id).

* :class:`RoutingSnapshot` in bucket ``promptlab_routing``: what every sidecar replica
  routes by. A sidecar keeps its last snapshot when the learner is down.
* :class:`StatsSnapshot` in bucket ``promptlab_stats``: what the TUI shows.

Both are read-only models for their readers; only the learner writes them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from events.kinds import VariantStatus

__all__ = [
    "ArmPosterior",
    "DecisionRecord",
    "RoutingSnapshot",
    "StatsSnapshot",
    "TrendPoint",
    "VariantStats",
    "VariantStatus",  # defined in events.kinds; re-exported for older imports
]


class _Snap(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ArmPosterior(_Snap):
    """Beta posterior of one variant's reward (successes + 1, failures + 1 with a flat prior)."""

    variant: str
    alpha: float = Field(gt=0)
    beta: float = Field(gt=0)
    status: VariantStatus = "challenger"


class RoutingSnapshot(_Snap):
    """Routing state of one prompt."""

    prompt_id: str
    version: int
    """Increases with every snapshot of this prompt (the stream sequence it reflects)."""
    champion: str
    arms: list[ArmPosterior]
    exploration_cap: float = Field(ge=0, le=1)
    paused: bool = False
    """True: champion only."""

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, data: bytes) -> RoutingSnapshot:
        return cls.model_validate_json(data)


class VariantStats(_Snap):
    """What the learner knows about one variant."""

    variant: str
    status: VariantStatus
    model: str = ""
    origin: str = "config"
    parent: str | None = None
    strategy: str | None = None
    executions: int = 0
    errors: int = 0
    rewarded: int = 0
    """Executions that received the prompt's reward feedback."""
    reward_mean: float | None = None
    reward_low: float | None = None
    reward_high: float | None = None
    p_best: float | None = None
    p_beats_champion: float | None = None
    traffic_share: float = 0.0
    """Share of this prompt's executions over the recent window."""
    cost_mean_usd: float = 0.0
    tokens_mean: float = 0.0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None


class DecisionRecord(_Snap):
    """A promotion, rollback, retirement or pause, for the log shown to operators."""

    sequence: int
    type: str
    variant: str | None = None
    previous: str | None = None
    reason: str = ""
    summary: str = ""
    occurred_at: str = ""


class TrendPoint(_Snap):
    """Per-minute bucket of one variant."""

    minute: int
    """Minutes since the epoch (from event timestamps, not the learner's clock)."""
    variant: str
    executions: int
    reward_mean: float | None = None


class StatsSnapshot(_Snap):
    """Everything the TUI shows about one prompt."""

    prompt_id: str
    version: int
    champion: str
    paused: bool = False
    exploration_cap: float = 0.2
    variants: list[VariantStats] = Field(default_factory=list)
    decisions: list[DecisionRecord] = Field(default_factory=list)
    """Most recent first, bounded."""
    trend: list[TrendPoint] = Field(default_factory=list)
    """Recent minutes, oldest first, bounded."""
    recommendation: str = ""
    """"keep exploring", "promote <variant>", "retire <variant>"... in words."""
    learner_sequence: int = 0
    """Newest stream sequence the learner had applied."""

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, data: bytes) -> StatsSnapshot:
        return cls.model_validate_json(data)
