"""The sections of a prompt file besides its variants: ``[reward]``, ``[routing]``,
``[constraints]``, ``[[examples]]``, ``[evaluation]`` and ``[learning]`` (frozen pydantic
models; the prompt itself is :class:`prompts.spec.PromptSpec`)."""

from __future__ import annotations

import fnmatch
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from promptlab.events.kinds import DEMONSTRATION
from promptlab.prompts.base import SpecModel
from promptlab.prompts.demos import MAX_K, DemosSpec
from promptlab.prompts.errors import SpecError
from promptlab.prompts.routing import EXPLORATION_CAP, EXPLORATION_FLOOR


class RewardSpec(SpecModel):
    """``[reward]``: what counts as success, and what it costs."""

    feedback: str = "thumbs_up"
    """Name of the feedback that is the reward (bool, or a number in 0..1)."""
    cost_weight: float = Field(default=0.0, ge=0)
    """Reward subtracted per USD of cost."""
    latency_weight: float = Field(default=0.0, ge=0)
    """Reward subtracted per second of latency."""
    max_cost_usd: float | None = Field(default=None, gt=0)
    """Hard constraint: mean cost per call above this disqualifies a variant."""
    max_p95_latency_ms: float | None = Field(default=None, gt=0)
    """Hard constraint on p95 latency."""
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    """Hard constraint on the share of failed calls."""
    scale: tuple[float, float] | None = None
    """``[min, max]`` of the reward feedback's values (e.g. ``[1, 5]`` stars), mapped
    onto 0..1; values off the scale are refused. Default ``[0, 1]`` (or a bool)."""

    @field_validator("feedback")
    @classmethod
    def _check_feedback(cls, value: str) -> str:
        if value == DEMONSTRATION:
            raise SpecError([("", f"{DEMONSTRATION!r} is the name of corrections, never a reward")])
        return value

    @field_validator("scale")
    @classmethod
    def _check_scale(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise SpecError([("", f"scale {list(value)} needs min < max")])
        return value


class RoutingSpec(SpecModel):
    """``[routing]``: how traffic is split between variants."""

    strategy: Literal["thompson", "fixed"] = "thompson"
    exploration_cap: float = Field(default=EXPLORATION_CAP, ge=0, le=1)
    """At most this share of traffic goes to challengers."""
    exploration_floor: float = Field(default=EXPLORATION_FLOOR, ge=0, le=0.5)
    """Under Thompson routing every live variant keeps at least this share (less when
    the challengers' floors would not fit in ``exploration_cap``), so the learner's
    allocation-aware test always divides by a known, non-zero probability."""
    weights: dict[str, float] = Field(default_factory=dict)
    """``variant -> weight`` for ``strategy = "fixed"`` (normalised; need not sum to 1)."""
    sticky: bool = True
    """A subject (user, session) keeps the variant it first got."""

    @model_validator(mode="after")
    def _check_weights(self) -> RoutingSpec:
        problems = [
            (f"weights.{name}", f"{weight} is negative")
            for name, weight in self.weights.items()
            if weight < 0
        ]
        if self.strategy == "fixed" and not any(w > 0 for w in self.weights.values()):
            problems.append(("weights", "strategy 'fixed' needs a positive weight per variant"))
        if self.strategy != "fixed" and self.weights:
            problems.append(("weights", "weights apply only to strategy 'fixed'"))
        if problems:
            raise SpecError(problems)
        return self


class ConstraintsSpec(SpecModel):
    """``[constraints]``: limits every variant must respect (mutations included)."""

    allowed_models: list[str] = Field(default_factory=list)
    """Models variants may use: exact names or shell patterns (``openai/*``); empty: any."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Ceiling on a variant's ``params.max_tokens``."""

    def allows_model(self, model: str) -> bool:
        """Whether ``model`` satisfies :attr:`allowed_models`."""
        return not self.allowed_models or any(
            fnmatch.fnmatchcase(model, pattern) for pattern in self.allowed_models
        )


class ExampleSpec(SpecModel):
    """``[[examples]]``: an input with the output wanted; experiments reuse it as a case."""

    name: str
    variables: dict[str, Any] = Field(default_factory=dict)
    expected: str | None = Field(
        default=None, validation_alias=AliasChoices("expected", "expected_output")
    )
    """Output wanted (key ``expected_output`` also works); None: judge without reference."""
    min_quality: float | None = Field(default=None, ge=0.0, le=1.0)
    """An experiment trial on this example succeeds at this quality (default: the experiment's)."""


class EvaluationSpec(SpecModel):
    """``[evaluation]``: evaluators run on a sampled share of this prompt's live calls.

    The learner process runs them (``lab.online``) and publishes each score as
    ``FeedbackReceived`` named ``feedback`` with ``source = "evaluator"``; set
    ``[reward] feedback`` to that name to learn from it. The sidecar captures the
    content (truncated) of this prompt's calls only, so the evaluators can read it.
    """

    evaluators: list[dict[str, Any]] = Field(min_length=1)
    """Entries as in an experiment's ``[[evaluators]]`` (kinds: exact, contains, regex,
    json_valid, json_schema, numeric, length, python, judge); checked by ``lab``."""
    sample: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of live executions evaluated (chosen by execution id: deterministic)."""
    feedback: str = "evaluator"
    """Feedback name the scores are published under."""
    max_calls_per_day: int | None = Field(default=None, ge=0)
    """Most judge calls a UTC day for this prompt (then evaluation pauses until tomorrow)."""
    max_usd_per_day: float | None = Field(default=None, ge=0.0)
    """Most USD a UTC day the evaluators may spend on this prompt."""


DEFAULT_MAX_EXAMPLES = 10_000
"""Production examples kept per prompt unless ``[learning] max_examples`` says otherwise."""


class LearningSpec(SpecModel):
    """``[learning]``: what the prompt learns from its own production traffic.

    With ``capture = true`` the sidecar puts each call's variables and answer (redacted,
    cut to ``server.capture_max_chars``) into its ``ExecutionCompleted`` event, and the
    learner projects them with their rewards into the ``examples`` table, which
    corrections (``demonstration`` feedback), datasets from traffic and reflection on
    real failures read. ``server.capture_content = true`` captures every prompt's.

    Sections of the learning loop that other parts add (demonstrations) extend this
    model; it is the one place the prompt file's ``[learning]`` keys are declared.
    """

    capture: bool = False
    """Capture this prompt's calls (variables and answer) as production examples."""
    max_examples: int = Field(default=DEFAULT_MAX_EXAMPLES, ge=1, le=1_000_000)
    """Examples kept for this prompt; beyond it the oldest (by event time) go first."""
    demos: AutoDemosSpec | None = None
    """The automatic demonstration challenger (``demos = { k = 4, min_pool = 50 }``);
    None: the learner registers none."""


class AutoDemosSpec(SpecModel):
    """``[learning] demos``: once the pool holds ``min_pool`` good answers, the learner
    registers ``<champion>+demos``: the champion showing demonstrations from production."""

    k: int = Field(default=4, ge=1, le=MAX_K)
    select: Literal["similar", "top"] = "similar"
    min_reward: float = Field(default=1.0, ge=0.0, le=1.0)
    min_pool: int = Field(default=50, ge=1, le=1_000_000)
    """Good answers (reward >= ``min_reward``, corrections included) the pool must hold."""
    format: Literal["turns"] = "turns"
    """Turns only: the champion's template need not place ``{{ demos }}``."""
    embedding_model: str | None = Field(default=None, max_length=200)
    """``provider/model``: the challenger retrieves by embeddings (``select = "similar"``)."""

    @model_validator(mode="after")
    def _check_embedding(self) -> AutoDemosSpec:
        self.variant_demos()  # the challenger's demos must be valid: say so now
        return self

    def variant_demos(self) -> DemosSpec:
        """The ``demos`` of the challenger it registers."""
        return DemosSpec(
            k=self.k, select=self.select, min_reward=self.min_reward,
            pool="production", format=self.format, embedding_model=self.embedding_model,
        )  # fmt: skip
