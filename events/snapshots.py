"""Snapshots the learner shares through JetStream KV (one key per prompt id).

* :class:`RoutingSnapshot` in bucket ``promptlab_routing``: what every sidecar replica
  routes by. A sidecar keeps its last snapshot when the learner is down.
* :class:`StatsSnapshot` in bucket ``promptlab_stats``: what the TUI shows.
* :class:`LearnerStatus` in bucket ``promptlab_learner`` (key ``status``): which learner
  is active, refreshed every few seconds, and its counters.
* :class:`AnalyticsSnapshot` in bucket ``promptlab_analytics``: analytics by period
  (recent hours and days) for the TUI's charts, in the shape of ``promptlab analytics
  --json``.
* :class:`DemoPoolSnapshot` in bucket ``promptlab_demos``: a prompt's demonstration
  pool (good past answers), compressed, which every sidecar retrieves from; with
  :class:`PoolVectors`, its embeddings are in bucket ``promptlab_demo_vectors``.

All are read-only models for their readers; only the learner writes them.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from promptlab.events.kinds import VariantLifecycle, VariantStatus

__all__ = [
    "VECTOR_CHUNK_BYTES",
    "AnalyticsSnapshot",
    "ArmPosterior",
    "DecisionRecord",
    "DemoPoolSnapshot",
    "DemoRecord",
    "PeriodSeries",
    "PeriodTotals",
    "PoolVectors",
    "RoutingSnapshot",
    "StatsSnapshot",
    "TrendPoint",
    "ValueCount",
    "VariableValues",
    "VariantPeriod",
    "VariantStats",
    "VariantStatus",  # defined in events.kinds; re-exported for older imports
]


class _Snap(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ArmPosterior(_Snap):
    """Beta posterior of one variant's reward (successes + 1, failures + 1 with a flat prior)."""

    variant: str
    version: str = ""
    """Content hash of the variant's version these figures are about."""
    alpha: float = Field(gt=0)
    beta: float = Field(gt=0)
    status: VariantStatus = "challenger"
    lifecycle: VariantLifecycle = "active"
    """Only ``active`` arms are routed (a deprecated or archived champion still is)."""


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
    holdback_share: float = Field(default=0.0, ge=0, lt=1)
    """Share of traffic of the arm with status ``holdback`` (the previous champion during
    a probation); the other arms share the rest as usual."""

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, data: bytes) -> RoutingSnapshot:
        return cls.model_validate_json(data)


class VariantStats(_Snap):
    """What the learner knows about one variant."""

    variant: str
    status: VariantStatus
    lifecycle: VariantLifecycle = "active"
    model: str = ""
    version: str = ""
    """Content hash of the variant's version (a new version starts with no evidence)."""
    origin: str = "config"
    parent: str | None = None
    strategy: str | None = None
    executions: int = 0
    errors: int = 0
    rewarded: int = 0
    """Executions that received the prompt's reward feedback."""
    window_rewarded: int = 0
    """Rewarded executions within the prompt's evaluation window (what decisions use;
    ``rewarded`` when the prompt has no window)."""
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


class LearnerStatus(_Snap):
    """The active learner, as it reports itself (refreshed every ``lease_s / 5`` s)."""

    state: Literal["active", "stopped"]
    holder: str
    """``host:pid:id`` of the learner holding the store's lease."""
    host: str
    pid: int
    lease: str = ""
    """How the lease is held (file lock, PostgreSQL advisory lock)."""
    sequence: int = 0
    """Stream position it has applied."""
    updated_ms: int = 0
    """Wall-clock time of this status (a status that stops moving is a dead learner)."""
    counters: dict[str, int] = Field(default_factory=dict)
    """Dead letters, feedback dropped / rejected / replaced, fallback failures."""

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, data: bytes) -> LearnerStatus:
        return cls.model_validate_json(data)


# --------------------------------------------------------------------------- analytics


class ValueCount(_Snap):
    """How often one value of a variable was used in a period."""

    value: str | bool | int | float
    count: int
    change: int | None = None
    """``count`` minus the same value's count in the previous period (None: no previous
    period in the report)."""


class VariableValues(_Snap):
    """The most used values of one variable in a period, most used first."""

    variable: str
    recorded: int
    """Calls in the period that recorded a value of this variable."""
    values: list[ValueCount] = Field(default_factory=list)
    other: int = 0
    """Recorded calls whose value is not listed (beyond the top, or beyond the distinct
    values the learner keeps per hour)."""


class VariantPeriod(_Snap):
    """One variant in one period: one entry of ``promptlab analytics --json``'s ``periods``
    (definitions in ``learner.storage.periods``)."""

    variant: str
    start: datetime
    end: datetime
    executions: int = 0
    errors: int = 0
    rewarded: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    raw_executions: int = 0
    unique_subjects: int | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    error_rate: float | None = None
    success_rate: float | None = None
    quality: float | None = None
    satisfaction: float | None = None
    trends: dict[str, float | None] = Field(default_factory=dict)
    """Each figure minus the same variant's figure in the previous period."""
    top_values: list[VariableValues] = Field(default_factory=list)


class PeriodTotals(_Snap):
    """Every variant of a prompt together in one period: calls and most used values."""

    start: datetime
    end: datetime
    executions: int = 0
    top_values: list[VariableValues] = Field(default_factory=list)


class PeriodSeries(_Snap):
    """A prompt's analytics at one interval: ``promptlab analytics --json``'s shape."""

    interval: Literal["hour", "day", "week", "month"]
    periods: list[VariantPeriod] = Field(default_factory=list)
    """Ordered by period start, then variant."""
    all_variants: list[PeriodTotals] = Field(default_factory=list)
    """Ordered by period start."""


class AnalyticsSnapshot(_Snap):
    """Recent periods of one prompt for the TUI's analytics charts (written by the learner
    every ``learner.analytics_interval_s`` while the prompt sees traffic)."""

    prompt_id: str
    series: list[PeriodSeries] = Field(default_factory=list)
    """One per interval (``hour``: the last hours, ``day``: the last days)."""
    learner_sequence: int = 0
    """Newest stream sequence the learner had applied."""

    def interval(self, name: str) -> PeriodSeries | None:
        """The series of interval ``name``, if the snapshot has it."""
        return next((s for s in self.series if s.interval == name), None)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, data: bytes) -> AnalyticsSnapshot:
        return cls.model_validate_json(data)


class DemoRecord(_Snap):
    """One demonstration of a published pool: an earlier call's variables and its answer."""

    id: str
    """The execution id it came from (or a content hash)."""
    variables: dict[str, Any]
    answer: str
    reward: float = 1.0


class PoolVectors(_Snap):
    """Embeddings of a pool's first ``count`` demonstrations by ``model``, for variants
    that retrieve by embeddings.

    ``count x dim`` little-endian float16 numbers, each row of unit length, split into
    ``chunks`` values of bucket ``promptlab_demo_vectors`` (keys
    :func:`~events.subjects.demo_vectors_key`, named by ``sha256``) of at most
    :data:`VECTOR_CHUNK_BYTES`; joined in order they hash to ``sha256``, which a reader
    checks.
    """

    model: str
    """``provider/model`` that embedded them; a call's query goes through the same one."""
    dim: int = Field(ge=0, le=16_384)
    """Numbers per row (0 for an empty pool)."""
    count: int = Field(ge=0)
    """Rows: the pool's first ``count`` demonstrations (the newest) have one each."""
    chunks: int = Field(ge=0)
    sha256: str

    @property
    def nbytes(self) -> int:
        return self.count * self.dim * 2


VECTOR_CHUNK_BYTES = 900_000
"""Largest chunk of embeddings in one KV value (NATS's default message limit is 1 MB)."""


class DemoPoolSnapshot(_Snap):
    """A prompt's demonstration pool as the learner built it (redacted, capped).

    Encoded as zlib-compressed JSON: a KV value must fit NATS's message size (1 MB by
    default), and the learner keeps a pool within :data:`MAX_ENCODED_BYTES`.
    """

    prompt_id: str
    pool: str = "production"
    version: int
    """Increases with every pool of this prompt (the stream sequence it reflects)."""
    demos: list[DemoRecord]
    """Newest first: equal scores go to the newer demonstration."""
    vectors: list[PoolVectors] = Field(default_factory=list)
    """Embeddings of the demonstrations, one entry per embedding model the pool's
    variants ask for (none: they retrieve by BM25)."""

    MAX_ENCODED_BYTES: ClassVar[int] = 900_000

    def encode(self) -> bytes:
        return zlib.compress(self.model_dump_json().encode(), 6)

    @classmethod
    def decode(cls, data: bytes) -> DemoPoolSnapshot:
        """Decode; ``ValueError`` for bytes that are not a pool (corrupt or foreign)."""
        try:
            raw = zlib.decompressobj().decompress(data, 64 * 1024 * 1024)
        except zlib.error as exc:
            raise ValueError(f"not a compressed demonstration pool: {exc}") from None
        return cls.model_validate_json(raw)
