"""promptlab events: the contract every other package speaks.

Versioned event models, subjects, snapshots, the EventBus protocol and its
implementations (JetStream, in-memory), the embedded nats-server launcher and the
never-blocking publisher with its durable outbox. Imports no other promptlab package.

``JetStreamBus`` is loaded on first use (``from events import JetStreamBus`` works):
nats-py pulls in aiohttp, which packages such as the learner must not load just by
importing ``events``.
"""

from typing import TYPE_CHECKING, Any

from promptlab.events.bus import (
    BusError,
    BusUnavailable,
    Consumer,
    Delivery,
    EventBus,
    KVEntry,
    PublishAck,
)
from promptlab.events.embedded import EmbeddedNats, EmbeddedNatsError, resolve_nats_url
from promptlab.events.errors import EventsError
from promptlab.events.kinds import (
    DecisionReason,
    EventSource,
    ExecutionStatus,
    RoutingMode,
    RoutingStrategy,
    VariantLifecycle,
    VariantOrigin,
    VariantStatus,
)
from promptlab.events.memory import MemoryBus
from promptlab.events.models import (
    BaseEvent,
    CommandRejected,
    EvaluationFailed,
    Event,
    EventDecodeError,
    Evidence,
    ExecutionCompleted,
    ExplorationPaused,
    ExplorationResumed,
    FeedbackReceived,
    LifecycleCommand,
    PauseCommand,
    PromoteCommand,
    PromptRegistered,
    RollbackCommand,
    RoutingInfo,
    VariantLifecycleChanged,
    VariantPromoted,
    VariantRegistered,
    VariantRetired,
    VariantRolledBack,
    decode,
    encode,
)
from promptlab.events.outbox import Outbox
from promptlab.events.publisher import EventPublisher
from promptlab.events.subjects import Bucket, Header, Subject

if TYPE_CHECKING:
    from promptlab.events.jetstream import JetStreamBus


def __getattr__(name: str) -> Any:
    if name == "JetStreamBus":
        from promptlab.events.jetstream import JetStreamBus

        return JetStreamBus
    raise AttributeError(f"module 'events' has no attribute {name!r}")


__all__ = [
    "BaseEvent",
    "Bucket",
    "BusError",
    "BusUnavailable",
    "CommandRejected",
    "Consumer",
    "DecisionReason",
    "Delivery",
    "EmbeddedNats",
    "EmbeddedNatsError",
    "EvaluationFailed",
    "Event",
    "EventBus",
    "EventDecodeError",
    "EventPublisher",
    "EventSource",
    "EventsError",
    "Evidence",
    "ExecutionCompleted",
    "ExecutionStatus",
    "ExplorationPaused",
    "ExplorationResumed",
    "FeedbackReceived",
    "Header",
    "JetStreamBus",
    "KVEntry",
    "LifecycleCommand",
    "MemoryBus",
    "Outbox",
    "PauseCommand",
    "PromoteCommand",
    "PromptRegistered",
    "PublishAck",
    "RollbackCommand",
    "RoutingInfo",
    "RoutingMode",
    "RoutingStrategy",
    "Subject",
    "VariantLifecycle",
    "VariantLifecycleChanged",
    "VariantOrigin",
    "VariantPromoted",
    "VariantRegistered",
    "VariantRetired",
    "VariantRolledBack",
    "VariantStatus",
    "decode",
    "encode",
    "resolve_nats_url",
]
