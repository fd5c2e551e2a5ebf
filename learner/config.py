"""Settings of the learner and of its storage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prompts.config import PromotionConfig


class StorageSettings(BaseModel):
    """``[storage]``: the SQL database the learner projects events into."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "sqlite+aiosqlite:///.promptlab/promptlab.db"
    """SQLAlchemy async URL: ``sqlite+aiosqlite:///path`` or
    ``postgresql+asyncpg://user@host/db``."""


class EvolutionSettings(BaseModel):
    """``[learner.evolution]``: breeding new challengers by LLM-driven mutation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    """Breed challengers automatically when a prompt has fewer than ``max_challengers``."""
    model: str = "simulated/mutator"
    """Model that writes mutations (``provider/model``)."""
    max_challengers: int = Field(default=2, ge=0)
    min_champion_samples: int = Field(default=200, ge=0)
    """Breed only once the champion has this many rewarded executions."""


class LearnerSettings(BaseModel):
    """``[learner]``: the continuous learner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Run the learner inside ``promptlab serve``."""
    durable: str = "promptlab-learner"
    """Name of its durable JetStream consumer."""
    batch_size: int = Field(default=500, ge=1)
    """Events applied per database transaction."""
    snapshot_interval_ms: int = Field(default=250, ge=10)
    """Publish routing and stats snapshots at most this often per prompt."""
    seed: int = 0
    """Base seed of the decision randomness (mixed with the stream sequence)."""
    lease_s: float = Field(default=10.0, gt=0)
    """One learner is active per store; a standby takes over within this many seconds
    of the active one's death (see ``learner/lease.py``)."""
    feedback_wait_s: float = Field(default=3600.0, ge=0)
    """Feedback whose execution has not arrived waits this long (in event time) before
    it is dropped and counted."""
    retention_days: float = Field(default=90.0, ge=0)
    """Raw executions older than this (in event time: the newest event seen) are deleted
    from SQL; the per-minute and per-arm aggregates are kept, so analytics by period keep
    their counters (not p50/p95 or unique subjects). 0 keeps every execution."""
    feedback_repeat: Literal["first", "last"] = "last"
    """A second feedback for the same execution and name: ``last`` replaces the reward
    (a user who corrects a rating), ``first`` keeps the first one."""
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    evolution: EvolutionSettings = Field(default_factory=EvolutionSettings)
