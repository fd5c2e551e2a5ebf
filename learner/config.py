"""Settings of the learner and of its storage."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from promptlab.lab.mutation.operators import OPERATORS
from promptlab.prompts.config import PromotionConfig


class StorageSettings(BaseModel):
    """``[storage]``: the SQL database the learner projects events into."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    url: str = "sqlite+aiosqlite:///.promptlab/promptlab.db"
    """SQLAlchemy async URL: ``sqlite+aiosqlite:///path`` or
    ``postgresql+asyncpg://user@host/db``."""


class EvolutionSettings(BaseModel):
    """``[learner.evolution]``: breeding new challengers by LLM-driven mutation.

    When a prompt has fewer live challengers than ``population`` and its champion has
    ``min_champion_samples`` rewarded executions, the learner breeds a mutant of the
    champion; the mutant enters live traffic only if an offline run on the prompt's
    ``[[examples]]`` (or, once there are enough, a held-out set of good calls from
    traffic: :mod:`learner.live_cases`) does not find it significantly worse than the
    champion.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True
    )

    enabled: bool = False
    """Breed challengers automatically (off by default; on in ``promptlab demo``)."""
    mutator: str = Field(
        default="simulated/mutator", validation_alias=AliasChoices("mutator", "model")
    )
    """Model that writes mutations (``provider/model``; ``model`` is accepted as an older name)."""
    population: int = Field(
        default=2, ge=0, le=16, validation_alias=AliasChoices("population", "max_challengers")
    )
    """Keep this many live challengers per prompt (``max_challengers`` is an older name)."""
    min_champion_samples: int = Field(default=200, ge=0)
    """Breed only once the champion has this many rewarded executions."""
    strategies: list[str] = Field(default_factory=lambda: [str(op) for op in OPERATORS])
    """Mutation operators to draw from (``crossover`` pairs the champion with the best
    retired challenger; ``reflect`` reads the champion's failing cases and why
    challengers were retired)."""
    interval_s: float = Field(default=30.0, gt=0)
    """How often prompts are checked for a missing challenger."""
    max_mutants_per_day: int = Field(default=20, ge=0)
    """Most mutants bred per prompt and UTC day (accepted or not)."""
    max_usd_per_day: float = Field(default=1.0, ge=0)
    """Most USD spent on breeding per UTC day (mutator and offline-check calls)."""
    judge: str = "simulated/judge"
    """Model of the LLM judge that scores the offline check (``provider/model``)."""
    rubric: str = (
        "Does the answer do what the task asks, as well as the reference answer when one is "
        "given? 1 = fully, 0 = not at all."
    )
    """The judge's rubric for the offline check."""
    repeats: int = Field(default=2, ge=1, le=20)
    """Calls per example and variant in the offline check."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """A mutant is kept out when the paired test finds it worse at this level."""
    live_failures: int = Field(default=10, ge=0, le=100)
    """Real failures from the production examples (calls rated below ``failure_reward``
    and corrections) that ``reflect`` reads, besides the failing ``[[examples]]``;
    0 reads none. Only prompts that capture examples have any."""
    failure_reward: float = Field(default=0.5, ge=0, le=1)
    """A production example rated below this is a failure ``reflect`` may read."""
    gate_min_cases: int = Field(default=20, ge=0)
    """The offline check runs on good calls from traffic (rated at least
    ``gate_good_reward``, never the ones ``reflect`` reads) instead of the
    ``[[examples]]`` once this many distinct ones exist; 0 never does."""
    gate_max_cases: int = Field(default=50, ge=1, le=1000)
    """Most traffic cases in that check (the newest)."""
    gate_good_reward: float = Field(default=0.8, ge=0, le=1)
    """A production example rated at least this is a good reference answer."""


class LearnerSettings(BaseModel):
    """``[learner]``: the continuous learner."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    enabled: bool = True
    """Run the learner inside ``promptlab serve``."""
    durable: str = "promptlab-learner"
    """Name of its durable JetStream consumer."""
    batch_size: int = Field(default=500, ge=1)
    """Events applied per database transaction."""
    serve_nice: int = Field(default=10, ge=0, le=19)
    """The nice value of the learner's process under ``promptlab serve`` (it runs in a
    child process). When the cores are busy the scheduler serves the calls first and the
    learner catches up on its backlog (kept in the stream) when they are not; 0 gives
    it the sidecar's priority."""
    batch_linger_ms: float = Field(default=50.0, ge=0)
    """After a fetch that did not fill a batch, wait up to this long for more events
    before applying it (0: apply what came at once). Each batch pays a commit, its acks'
    round trips and a policy run per prompt it touched: under steady traffic, batches
    of a few events cost the learner several times more CPU per event."""
    snapshot_interval_ms: int = Field(default=250, ge=10)
    """Publish routing and stats snapshots at most this often per prompt."""
    demos_interval_s: float = Field(default=5.0, ge=0)
    """Rebuild the demonstration pools of prompts that use production demonstrations (and
    register due demonstration challengers) this often; 0 never does."""
    analytics_interval_s: float = Field(default=15.0, ge=0)
    """Publish analytics snapshots (recent hours and days per variant, for the TUI's
    analytics tab) of prompts with new traffic this often; 0 never publishes them."""
    analytics_day_refresh_s: float = Field(default=300.0, ge=0)
    """Rebuild a prompt's day series (14 days of raw executions) at most this often; the
    hour series is rebuilt at every analytics round."""
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
    """``[learner.promotion]``: when a challenger is promoted, rolled back or retired
    (a prompt file's ``[promotion]`` overrides these per prompt)."""
    evolution: EvolutionSettings = Field(default_factory=EvolutionSettings)
    """``[learner.evolution]``: continuous breeding of challengers."""
