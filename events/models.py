"""The event contract: frozen, versioned pydantic models with a ``type`` discriminator.

Every fact promptlab knows travels as one of these events. They are the source of
truth: the learner's tables are projections of them and can be rebuilt from them.

Rules for changing this module:

* never change the meaning of a field; add a new optional field instead;
* a breaking change bumps the model's ``schema_version`` and adds an upcaster to
  :data:`UPCASTERS` that turns the old shape into the new one;
* decoders ignore unknown fields, so older readers survive newer writers.

Why one module of this size: it is the contract; every event's shape, with its
upcasters and the fast decoder, in one reviewed place.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from promptlab.events.errors import EventsError
from promptlab.events.kinds import (
    DecisionReason,
    EventSource,
    ExecutionStatus,
    RoutingStrategy,
    VariantLifecycle,
    VariantOrigin,
)
from promptlab.events.subjects import Subject

JsonDict = dict[str, Any]


def new_event_id() -> str:
    """A fresh random event id (32 hex characters)."""
    return uuid.uuid4().hex


def deterministic_event_id(*parts: object) -> str:
    """An event id derived from its inputs, for decisions that replay must not repeat.

    The learner derives decision ids from the stream sequence that triggered them, so a
    replay produces the same id and JetStream's duplicate window drops the second copy.
    """
    return uuid.uuid5(uuid.NAMESPACE_URL, "promptlab:" + ":".join(map(str, parts))).hex


def _now() -> datetime:
    return datetime.now(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class BaseEvent(_Frozen):
    """Fields every event carries."""

    nats_subject: ClassVar[Subject]

    event_id: str = Field(default_factory=new_event_id)
    """Unique id; also the JetStream ``Nats-Msg-Id``, so a re-publish is deduplicated."""
    schema_version: int = 1
    """Version of this event type's shape; older versions are upcast on decode."""
    occurred_at: datetime = Field(default_factory=_now)
    """When the fact happened (UTC). Data, never a source of decisions' randomness."""


# --------------------------------------------------------------------------- parts


class RoutingInfo(_Frozen):
    """How the router chose the variant of one execution."""

    strategy: RoutingStrategy = "thompson"
    probability: float = Field(ge=0.0, le=1.0)
    """Estimated probability that this variant is chosen for such a call."""
    exploration: bool = False
    """True when a challenger ran (the call counts against the exploration cap)."""
    snapshot_version: int = 0
    """Version of the routing snapshot the decision used (0: priors from config)."""
    fallback_from: str | None = None
    """Set when this call was retried on the champion after the named challenger failed."""


class ModelAttempt(_Frozen):
    """One model tried for an execution (provider fallbacks), with how it ended."""

    model: str
    """``provider/model``."""
    error_kind: str | None = None
    """None: this model answered."""


class CapturedContent(_Frozen):
    """Request and response text, only when content capture is configured; truncated."""

    messages: list[JsonDict] = Field(default_factory=list)
    output: str | None = None
    truncated: bool = False
    variables: JsonDict | None = None
    """The call's validated variable values, redacted and cut like the messages, when
    its prompt captures production examples (``[learning] capture`` or
    ``server.capture_content``); None otherwise (content captured for online evaluation
    only). The learner's ``examples`` table is projected from it."""


class Interval(_Frozen):
    low: float
    high: float


class ArmEvidence(_Frozen):
    """What the learner knew about one arm when it decided."""

    variant: str
    n: int
    reward_mean: float
    reward_interval: Interval | None = None
    error_rate: float | None = None
    cost_mean_usd: float | None = None
    latency_p95_ms: float | None = None


class Evidence(_Frozen):
    """The numbers behind a promotion, rollback or retirement."""

    challenger: ArmEvidence
    champion: ArmEvidence
    p_better: float | None = None
    """Posterior probability that the challenger beats the champion."""
    p_value: float | None = None
    """Always-valid p-value of the sequential test."""
    lift: float | None = None
    lift_interval: Interval | None = None
    rule: str = ""
    """The rule that fired, in words (e.g. "p_better>=0.95 and msprt p<0.05")."""
    details: JsonDict = Field(default_factory=dict)


# --------------------------------------------------------------------------- variants


class VariantRegistered(BaseEvent):
    """A prompt variant exists (from config, the admin API or mutation)."""

    nats_subject: ClassVar[Subject] = Subject.VARIANT
    type: Literal["variant.registered"] = "variant.registered"

    prompt_id: str
    variant: str
    version: str
    """Hash of the variant's content: same content, same version."""
    model: str
    params: JsonDict = Field(default_factory=dict)
    system: str | None = None
    template: str
    variables: list[JsonDict] = Field(default_factory=list)
    champion: bool = False
    """True when the prompt file marks this variant as the champion."""
    status: VariantLifecycle = "active"
    """The author's lifecycle state; only ``active`` variants are routed."""
    origin: VariantOrigin = "config"
    parent: str | None = None
    """Variant this one was bred from (mutation), if any."""
    strategy: str | None = None
    """Mutation strategy that produced it, if any."""
    parents: list[str] = Field(default_factory=list)
    """Every variant it was bred from (two for a crossover); ``parent`` is the first."""
    generation: int | None = None
    """Generation of the search that bred it (0 is the seed), if any."""
    search: str | None = None
    """Search that selected its parents (genetic, hill_climbing, annealing, pareto)."""
    rationale: str | None = None
    """The mutator's one-sentence account of what it changed."""
    offline_check: JsonDict | None = None
    """The offline comparison with the champion that let a bred variant into live traffic
    or kept it out: ``passed``, ``n``, ``mean_diff``, ``p_value``, ``significant``, ``reason``."""
    source: Literal["live", "offline"] = "live"
    """``offline``: a candidate of an offline search (``promptlab evolve``), recorded for
    its lineage and never routed; ``live``: a variant that may receive traffic."""
    demos: JsonDict | None = None
    """The variant's ``demos = {...}`` (k, select, min_reward, pool, format); None: it
    shows no demonstrations."""


class PromptRegistered(BaseEvent):
    """A whole prompt was created or changed at run time (the admin API).

    ``spec`` is the prompt in the prompt file's shape (the keys of
    ``config/prompts/*.toml``, variants included) as the prompt kernel accepted it, so a
    reader rebuilds the prompt from this one event. Each new or changed variant is also
    announced by its own :class:`VariantRegistered` (history and statistics stay per
    variant version); this event carries what only the prompt has (variables, reward,
    routing, promotion overrides...). A prompt file of the same id wins over it.
    """

    nats_subject: ClassVar[Subject] = Subject.PROMPT
    type: Literal["prompt.registered"] = "prompt.registered"

    prompt_id: str
    version: str
    """Hash of ``spec``: the same definition, the same version."""
    spec: JsonDict
    origin: VariantOrigin = "api"
    actor: str = "operator"
    changes: list[str] = Field(default_factory=list)
    """What this registration changed, in words (``["created"]`` for a new prompt)."""


class VariantRetired(BaseEvent):
    nats_subject: ClassVar[Subject] = Subject.DECISION
    type: Literal["variant.retired"] = "variant.retired"

    prompt_id: str
    variant: str
    reason: str
    actor: str = "learner"
    evidence: Evidence | None = None
    trigger_sequence: int | None = None


# --------------------------------------------------------------------------- traffic


class ExecutionCompleted(BaseEvent):
    """One call through the sidecar (or one offline experiment trial) finished."""

    nats_subject: ClassVar[Subject] = Subject.EXECUTION
    type: Literal["execution.completed"] = "execution.completed"

    execution_id: str
    prompt_id: str | None = None
    """None for calls that passed through unrouted."""
    variant: str | None = None
    version: str | None = None
    model: str
    provider: str
    subject: str | None = None
    """The app's subject (user, session) for sticky routing and unique counts."""
    latency_ms: float
    ttft_ms: float | None = None
    """Time to first token, for streamed calls."""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    status: ExecutionStatus = "ok"
    error_kind: str | None = None
    http_status: int | None = None
    stream: bool = False
    routing: RoutingInfo | None = None
    source: EventSource = "live"
    experiment_id: str | None = None
    content: CapturedContent | None = None
    fell_back_to: str | None = None
    """Set on a routed call's failed attempt (status error) when the call was then
    answered by this other variant (the champion): the failure counts against this
    event's variant, the answer is the other variant's execution (whose
    ``routing.fallback_from`` names this variant)."""
    attempts: list[ModelAttempt] = Field(default_factory=list)
    """Models tried for this execution, in order, when more than one was (provider
    ``fallbacks``); ``model`` is the one that answered."""
    endpoint: str | None = None
    """The OpenAI endpoint of a call passed through unrouted other than chat completions
    (``embeddings``, ``completions``, ``responses``); None for chat completions."""
    variable_values: JsonDict | None = None
    """Values of the call's variables that its prompt lets analytics record (variables
    with an enum, booleans, numbers, strings opted in with ``analytics = true``; strings
    cut to 64 characters; see ``prompts.analytics``): strings, booleans and numbers, by
    variable name. None on unrouted calls, on calls that recorded nothing, and on events
    written before it existed. Not validated further, so a malformed value never costs
    the execution itself: readers skip any value that is not a string, boolean or number."""
    demos: list[str] | None = None
    """Ids of the demonstrations the call was shown, in the order shown (production
    examples by their execution id); None when its variant shows none."""


class FeedbackReceived(BaseEvent):
    """An app (or evaluator) scored an execution."""

    nats_subject: ClassVar[Subject] = Subject.FEEDBACK
    type: Literal["feedback.received"] = "feedback.received"

    execution_id: str
    name: str
    value: bool | float
    comment: str | None = None
    source: Literal["live", "offline", "evaluator"] = "live"
    """``evaluator``: a score from online evaluation (``lab.online``), not from a user."""
    text: str | None = None
    """The answer a reviewer says the call should have given, on a correction (``name``
    is :data:`~events.kinds.DEMONSTRATION`, ``value`` is True); redacted and size-capped
    by the sidecar. Never a reward: the learner's examples table takes it as a good
    example with the call's variables."""


MAX_EVALUATION_ERROR = 300
"""Longest error text an :class:`EvaluationFailed` carries."""


class EvaluationFailed(BaseEvent):
    """Evaluators could not score an execution (a judge answer that is not a JSON score
    in 0..1, a failed judge call, a Python evaluator that raised); no score was
    published. The learner counts these (``evaluation_errors``, and
    ``evaluation_errors_offline`` for experiments), so they show in ``promptlab stats``
    and ``/metrics`` however many processes evaluate."""

    nats_subject: ClassVar[Subject] = Subject.FEEDBACK
    type: Literal["evaluation.failed"] = "evaluation.failed"

    execution_id: str
    prompt_id: str | None = None
    errors: list[str] = Field(default_factory=list)
    """What went wrong, per evaluator (each cut to :data:`MAX_EVALUATION_ERROR`)."""
    source: Literal["live", "offline"] = "live"
    """``live``: online evaluation of a sampled call; ``offline``: an experiment's trial."""

    @classmethod
    def of(
        cls, execution_id: str, prompt_id: str | None, errors: list[str], **fields: Any
    ) -> EvaluationFailed:
        """The event, with each error cut to :data:`MAX_EVALUATION_ERROR` characters."""
        cut = [e[:MAX_EVALUATION_ERROR] for e in errors[:10]]
        return cls(execution_id=execution_id, prompt_id=prompt_id, errors=cut, **fields)


# --------------------------------------------------------------------------- decisions


class VariantPromoted(BaseEvent):
    nats_subject: ClassVar[Subject] = Subject.DECISION
    type: Literal["variant.promoted"] = "variant.promoted"

    prompt_id: str
    variant: str
    previous_champion: str | None = None
    reason: DecisionReason = "auto"
    actor: str = "learner"
    evidence: Evidence | None = None
    trigger_sequence: int | None = None
    """Stream sequence whose processing led to this decision (auto decisions)."""


class VariantRolledBack(BaseEvent):
    nats_subject: ClassVar[Subject] = Subject.DECISION
    type: Literal["variant.rolled_back"] = "variant.rolled_back"

    prompt_id: str
    variant: str
    """The champion that was demoted."""
    restored: str
    """The variant that is champion again."""
    reason: DecisionReason = "auto"
    actor: str = "learner"
    evidence: Evidence | None = None
    trigger_sequence: int | None = None


class ExplorationPaused(BaseEvent):
    nats_subject: ClassVar[Subject] = Subject.DECISION
    type: Literal["exploration.paused"] = "exploration.paused"

    prompt_id: str
    actor: str = "operator"
    reason: str = ""


class ExplorationResumed(BaseEvent):
    nats_subject: ClassVar[Subject] = Subject.DECISION
    type: Literal["exploration.resumed"] = "exploration.resumed"

    prompt_id: str
    actor: str = "operator"
    reason: str = ""


# --------------------------------------------------------------------------- commands


class PromoteCommand(BaseEvent):
    """An operator asks to make a variant champion (CLI, admin API or TUI)."""

    nats_subject: ClassVar[Subject] = Subject.COMMAND
    type: Literal["command.promote"] = "command.promote"

    prompt_id: str
    variant: str
    actor: str = "operator"
    reason: str = ""


class RollbackCommand(BaseEvent):
    """An operator asks to undo the last promotion of a prompt."""

    nats_subject: ClassVar[Subject] = Subject.COMMAND
    type: Literal["command.rollback"] = "command.rollback"

    prompt_id: str
    actor: str = "operator"
    reason: str = ""


class PauseCommand(BaseEvent):
    """An operator asks to stop (``paused=True``) or restart exploration of a prompt."""

    nats_subject: ClassVar[Subject] = Subject.COMMAND
    type: Literal["command.pause"] = "command.pause"

    prompt_id: str
    paused: bool = True
    actor: str = "operator"
    reason: str = ""


class LifecycleCommand(BaseEvent):
    """An operator asks to move a variant to another lifecycle state (CLI, admin API, TUI):
    ``active`` (routed), ``deprecated`` (no new traffic, statistics kept) or ``archived``
    (also hidden from default lists). The learner carries it out or rejects it."""

    nats_subject: ClassVar[Subject] = Subject.COMMAND
    type: Literal["command.lifecycle"] = "command.lifecycle"

    prompt_id: str
    variant: str
    status: VariantLifecycle
    actor: str = "operator"
    reason: str = ""


class VariantLifecycleChanged(BaseEvent):
    """The learner moved a variant to another lifecycle state (a carried-out command)."""

    nats_subject: ClassVar[Subject] = Subject.DECISION
    type: Literal["variant.lifecycle"] = "variant.lifecycle"

    prompt_id: str
    variant: str
    status: VariantLifecycle
    previous: VariantLifecycle
    actor: str = "operator"
    reason: str = ""


class CommandRejected(BaseEvent):
    """The learner refused a command, and says why."""

    nats_subject: ClassVar[Subject] = Subject.DECISION
    type: Literal["command.rejected"] = "command.rejected"

    command_id: str
    prompt_id: str
    reason: str


Event = Annotated[
    VariantRegistered
    | PromptRegistered
    | VariantRetired
    | ExecutionCompleted
    | FeedbackReceived
    | EvaluationFailed
    | VariantPromoted
    | VariantRolledBack
    | ExplorationPaused
    | ExplorationResumed
    | PromoteCommand
    | RollbackCommand
    | PauseCommand
    | LifecycleCommand
    | VariantLifecycleChanged
    | CommandRejected,
    Field(discriminator="type"),
]
"""Any promptlab event."""

EVENT_TYPES: dict[str, type[BaseEvent]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(Event)[0])
}
"""``type`` discriminator -> event class, derived from :data:`Event` (the one list)."""

_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

Upcaster = Callable[[JsonDict], JsonDict]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""``(type, from_version) -> function`` returning the payload at ``from_version + 1``."""


class EventDecodeError(EventsError, ValueError):
    """Bytes that are not a promptlab event this version understands."""


def encode(event: BaseEvent) -> bytes:
    """Serialize an event to the JSON bytes published on the stream."""
    return event.model_dump_json(exclude_none=True).encode()


def upcast(payload: JsonDict) -> JsonDict:
    """Bring an older payload up to the current schema version of its type."""
    kind = payload.get("type")
    version = int(payload.get("schema_version", 1))
    while (step := UPCASTERS.get((str(kind), version))) is not None:
        payload = step(payload)
        version += 1
        payload["schema_version"] = version
    return payload


def decode(data: bytes | str) -> BaseEvent:
    """Parse bytes from the stream into an event; raise :class:`EventDecodeError`."""
    # Fast path: pydantic parses and validates the bytes in one pass (no dict in
    # between). Anything it does not accept as a current-version event, and any event
    # with an upcaster for its version, takes the path below, which decides (and words
    # the error) exactly as before.
    try:
        event = _ADAPTER.validate_json(data)
    except ValidationError:
        pass
    else:
        if (event.type, event.schema_version) not in UPCASTERS:
            return event
    return _decode_slow(data)


def _decode_slow(data: bytes | str) -> BaseEvent:
    try:
        payload = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise EventDecodeError("an event must be a JSON object")
    kind = payload.get("type")
    if kind not in EVENT_TYPES:
        raise EventDecodeError(f"unknown event type {kind!r}")
    try:
        return _ADAPTER.validate_python(upcast(payload))
    except ValidationError as exc:
        raise EventDecodeError(f"invalid {kind} event: {exc.errors()[0]['msg']}") from exc
