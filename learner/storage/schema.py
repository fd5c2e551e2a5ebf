"""The learner's SQL schema (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Every table here except :data:`outbox` is a pure projection of the event stream:
``promptlab replay`` rebuilds it from sequence 1 and must find it identical.

Aggregates are stored as integers in fixed-point units (``*_micro`` = 1e-6,
``cost_nano`` = 1e-9 USD, ``latency_us`` = microseconds). Integer addition is
associative, so the totals do not depend on where batch boundaries fell: a learner that
was killed and restarted mid-stream ends with exactly the numbers of a single pass.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

MICRO = 1_000_000
"""Scale of rewards (and squared rewards) stored as integers."""
NANO = 1_000_000_000
"""Scale of costs in USD stored as integers."""

PROBATION_COUNTERS: tuple[str, ...] = (
    "rewarded",
    "reward_micro",
    "reward_sq_micro",
    "executions",
    "errors",
    "cost_nano",
)
"""Counters kept for a probation, for the new champion and for the frozen baseline
(named like the :data:`arm_stats` columns, prefixed ``probation_`` / ``baseline_``)."""

metadata = MetaData()

projection_position = Table(
    "projection_position",
    metadata,
    Column("consumer", String(200), primary_key=True),
    Column("sequence", BigInteger, nullable=False),
)
"""The stream sequence each projection has applied, written with its data."""

prompt_state = Table(
    "prompt_state",
    metadata,
    Column("prompt_id", String(200), primary_key=True),
    Column("champion", String(200), nullable=True),
    # True once a champion was chosen explicitly (prompt file flag or a decision), so
    # a later VariantRegistered does not move it.
    Column("champion_explicit", Boolean, nullable=False, default=False),
    Column("paused", Boolean, nullable=False, default=False),
    # Champion before the last promotion: what a rollback restores.
    Column("previous_champion", String(200), nullable=True),
    Column("probation_variant", String(200), nullable=True),
    # Rewarded calls of the prompt since the last promotion, while its probation runs
    # (it ends at learner.stats.etest.probation_steps).
    Column("probation_steps", BigInteger, nullable=False, default=0, server_default="0"),
    # The probation record of the last promotion (until the next promotion or a
    # rollback): the champion's counters since it was promoted, and the previous
    # champion's counters frozen at that moment (over the evaluation window, if any).
    # What the rollback guard (learner.policy.probation) compares.
    *[
        Column(f"{side}_{name}", BigInteger, nullable=False, default=0)
        for side in ("probation", "baseline")
        for name in PROBATION_COUNTERS
    ],
    Column("last_decision_sequence", BigInteger, nullable=False, default=0),
    # Same-period promotion tests this prompt has started (e-LOND numbers them 1, 2, ...).
    Column("tests_started", BigInteger, nullable=False, default=0, server_default="0"),
    # Rewarded calls so far and their sum: the baseline of the next call's increments.
    Column("base_n", BigInteger, nullable=False, default=0, server_default="0"),
    Column("base_sum", Float, nullable=False, default=0.0, server_default="0"),
    # The running probation test (JSON [n, sum_y, sum_y2, log_wealth, max_log_wealth]).
    Column("probation_test", Text, nullable=False, default="", server_default=""),
    # Newest stream sequence that changed this prompt (snapshot version).
    Column("last_sequence", BigInteger, nullable=False, default=0),
    # Newest ``occurred_at`` seen for this prompt: the learner's notion of "now".
    Column("last_event_ms", BigInteger, nullable=False, default=0),
)

variants = Table(
    "variants",
    metadata,
    Column("prompt_id", String(200), primary_key=True),
    Column("variant", String(200), primary_key=True),
    Column("version", String(100), nullable=False),
    Column("model", String(200), nullable=False),
    Column("origin", String(20), nullable=False),
    Column("parent", String(200), nullable=True),
    Column("strategy", String(200), nullable=True),
    Column("status", String(20), nullable=False),
    Column("registered_sequence", BigInteger, nullable=False),
    # The author's lifecycle (draft/active/deprecated/archived), next to the learner's status.
    Column("lifecycle", String(20), nullable=False, server_default="active"),
    # The challenger's current same-period test against the champion: its e-LOND number
    # and the stream sequence it starts after (0: no test running).
    Column("test_number", BigInteger, nullable=False, server_default="0"),
    Column("test_start", BigInteger, nullable=False, server_default="0"),
    # Its running state and its futility twin's (JSON, learner.projection.rows).
    Column("test_state", Text, nullable=False, server_default=""),
)

variant_versions = Table(
    "variant_versions",
    metadata,
    Column("prompt_id", String(200), primary_key=True),
    Column("variant", String(200), primary_key=True),
    Column("version", String(100), primary_key=True),
    # Stream sequence and event time of the version's first registration.
    Column("sequence", BigInteger, nullable=False),
    Column("occurred_ms", BigInteger, nullable=False),
    Column("origin", String(20), nullable=False),
    Column("parent", String(200), nullable=True),
    Column("strategy", String(200), nullable=True),
    Column("model", String(200), nullable=False),
    Column("lifecycle", String(20), nullable=False),
    Column("params", Text, nullable=False),  # sorted JSON
    Column("system", Text, nullable=True),
    Column("template", Text, nullable=False),
)
"""Every version each variant ever had (``promptlab prompts history`` and ``diff``)."""

prompt_definitions = Table(
    "prompt_definitions",
    metadata,
    Column("prompt_id", String(200), primary_key=True),
    # Stream sequence and event time of the latest PromptRegistered of this prompt.
    Column("sequence", BigInteger, nullable=False),
    Column("occurred_ms", BigInteger, nullable=False),
    Column("version", String(100), nullable=False),
    Column("origin", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("spec", Text, nullable=False),  # the prompt file's shape, sorted JSON
)
"""Prompts defined at run time (admin API): the latest definition of each, whose reward
rule and promotion overrides the learner applies (see learner.projection.definitions)."""

executions = Table(
    "executions",
    metadata,
    Column("execution_id", String(200), primary_key=True),
    Column("sequence", BigInteger, nullable=False),
    Column("prompt_id", String(200), nullable=True),
    Column("variant", String(200), nullable=True),
    Column("model", String(200), nullable=False),
    Column("subject", String(200), nullable=True),
    Column("status", String(20), nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float, nullable=True),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("occurred_ms", BigInteger, nullable=False),
    # The challenger whose failed call this execution answered instead (routed to it,
    # fell back to the champion): its feedback is not evidence about either arm.
    Column("fallback_from", String(200), nullable=True),
    # Sequence of the feedback that set the reward (the first one counts).
    Column("feedback_sequence", BigInteger, nullable=True),
    # The reward metric's value clipped to 0..1, before cost/latency weights.
    Column("feedback_value", Float, nullable=True),
    Column("reward", Float, nullable=True),
    # RoutingInfo.probability: the share the variant had when this call was routed (what
    # the allocation-aware promotion test weights the reward by).
    Column("probability", Float, nullable=True),
    Index("ix_executions_prompt_time", "prompt_id", "occurred_ms"),
)

pending_feedback = Table(
    "pending_feedback",
    metadata,
    Column("sequence", BigInteger, primary_key=True),
    Column("execution_id", String(200), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("value", Float, nullable=False),
    # The value was a bool (it fits only the default 0..1 reward scale).
    Column("boolean", Boolean, nullable=False, default=False),
    Column("occurred_ms", BigInteger, nullable=False),
    # A correction's ideal answer (FeedbackReceived.text) and the feedback's comment.
    Column("text", Text, nullable=True),
    Column("comment", Text, nullable=True),
)
"""Feedback whose execution has not arrived yet; applied (and deleted) when it does."""

_AGGREGATES = (
    ("executions", BigInteger),
    ("errors", BigInteger),
    ("rewarded", BigInteger),
    ("positive", BigInteger),
    ("reward_micro", BigInteger),
    ("reward_sq_micro", BigInteger),
    ("cost_nano", BigInteger),
    ("tokens", BigInteger),
    ("latency_us", BigInteger),
)
AGGREGATE_COLUMNS: tuple[str, ...] = tuple(name for name, _ in _AGGREGATES)
"""Counters shared by :data:`arm_stats` and :data:`minute_buckets`, added up per batch."""


def _aggregates() -> list[Column[int]]:
    return [Column(name, kind, nullable=False, default=0) for name, kind in _AGGREGATES]


arm_stats = Table(
    "arm_stats",
    metadata,
    Column("prompt_id", String(200), primary_key=True),
    Column("variant", String(200), primary_key=True),
    *_aggregates(),
)

minute_buckets = Table(
    "minute_buckets",
    metadata,
    Column("prompt_id", String(200), primary_key=True),
    Column("variant", String(200), primary_key=True),
    # Minutes since the epoch of the execution's ``occurred_at`` (late rewards land in
    # their execution's minute, so a window means "calls made in the window").
    Column("minute", BigInteger, primary_key=True),
    *_aggregates(),
)

latency_histogram = Table(
    "latency_histogram",
    metadata,
    Column("prompt_id", String(200), primary_key=True),
    Column("variant", String(200), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    Column("count", BigInteger, nullable=False),
)
"""Log-spaced latency buckets (2 % wide): bounded, exact and deterministic percentiles."""

variable_values = Table(
    "variable_values",
    metadata,
    # Key order: a prompt's hours are one index range (reports, and the projection's
    # look-up of the values an hour already has).
    Column("prompt_id", String(200), primary_key=True),
    # Hours since the epoch of the execution's ``occurred_at`` (every analytics interval
    # is a whole number of UTC hours).
    Column("hour", BigInteger, primary_key=True),
    Column("variant", String(200), primary_key=True),
    Column("variable", String(100), primary_key=True),
    # The value as JSON text ('"python"', '3', 'true'), strings cut to
    # prompts.MAX_VALUE_CHARS; OTHER_VALUE ("*", never valid JSON) counts the values past
    # the first MAX_VALUES_PER_HOUR distinct ones of the hour.
    Column("value", String(400), primary_key=True),
    Column("count", BigInteger, nullable=False),
)
"""How often each recorded variable value was used (``ExecutionCompleted.variable_values``),
per prompt, variant, variable and hour: the "most used values" of analytics by period.
An aggregate: kept when ``learner.retention_days`` deletes raw executions."""

OTHER_VALUE = "*"
"""The :data:`variable_values` row of the values past the distinct ones kept per hour."""
MAX_VALUES_PER_HOUR = 50
"""Distinct values of one variable kept per prompt, variant and hour (in stream order);
later new values count under :data:`OTHER_VALUE`, which bounds the table however varied
the values an author opted in are."""

examples = Table(
    "examples",
    metadata,
    # The execution id of the captured call: one example per call (a correction
    # replaces its answer in place, so the cap and the retention treat it as the call).
    Column("id", String(200), primary_key=True),
    Column("prompt_id", String(200), nullable=False),
    Column("variant", String(200), nullable=False),
    Column("version", String(100), nullable=True),
    # The call's variables as sorted JSON, redacted by the sidecar before the event.
    Column("variables", Text, nullable=False),
    # The model's answer, or the reviewer's (source "correction"); redacted.
    Column("answer", Text, nullable=False),
    # The reward feedback (user or evaluator, whichever [reward] feedback names) on
    # 0..1, before cost and latency weights; 1.0 for a correction; None: not rated.
    Column("reward", Float, nullable=True),
    Column("source", String(20), nullable=False),
    # occurred_at of the call (event time, never the wall clock): the cap's order.
    Column("created_ms", BigInteger, nullable=False),
    # sha256 of the call's subject (16 hex digits), None without a subject.
    Column("subject_hash", String(32), nullable=True),
    # The comment of the newest counted feedback (evaluator reasons, a user's words).
    Column("comment", Text, nullable=True),
    # The model's own answer a correction replaced (what reflection compares).
    Column("replaced_answer", Text, nullable=True),
    Index("ix_examples_prompt_time", "prompt_id", "created_ms"),
)
"""Production examples (``[learning] capture``): a captured call's variables and answer
with its reward, or a reviewer's correction. Capped per prompt (oldest out) and deleted
with the retention, both on the event clock; read through :mod:`learner.examples`."""

decisions = Table(
    "decisions",
    metadata,
    Column("sequence", BigInteger, primary_key=True),
    Column("event_id", String(64), nullable=False),
    Column("prompt_id", String(200), nullable=False, index=True),
    Column("type", String(40), nullable=False),
    Column("variant", String(200), nullable=True),
    Column("previous", String(200), nullable=True),
    Column("reason", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("summary", Text, nullable=False),
    Column("evidence", Text, nullable=True),
    Column("occurred_ms", BigInteger, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("prompt_id", String(200), nullable=False),
    Column("data", LargeBinary, nullable=False),
)
"""Decisions written in the projection's transaction, published after commit and
deleted when they come back through the stream. Not a projection: replay skips it."""

learner_counters = Table(
    "learner_counters",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
"""Counts the projection keeps (a pure function of the stream, so replay rebuilds them):
``dead_letters``, ``feedback_dropped`` (its execution never arrived within
``learner.feedback_wait_s``), ``feedback_rejected`` (off the reward scale),
``feedback_replaced`` / ``feedback_ignored`` (repeats, per ``learner.feedback_repeat``),
``evaluation_errors`` / ``evaluation_errors_offline`` (``EvaluationFailed``: online and
offline evaluations that could not score), and ``clock_ms``: the newest ``occurred_at`` seen, the projection's notion of "now"."""

learner_lease = Table(
    "learner_lease",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(300), nullable=False),
    Column("host", String(300), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("acquired_ms", BigInteger, nullable=False),
)
"""Who took the single-active-learner lease last (:mod:`learner.lease`); whether it is
still held is asked of the lock itself. Not a projection: replay skips it."""

PROJECTED_TABLES: tuple[Table, ...] = (
    projection_position,
    prompt_state,
    variants,
    variant_versions,
    prompt_definitions,
    executions,
    pending_feedback,
    arm_stats,
    minute_buckets,
    latency_histogram,
    variable_values,
    examples,
    decisions,
    learner_counters,
)
"""Tables that replay rebuilds and compares (in this order)."""
