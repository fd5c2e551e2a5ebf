"""promptlab events: the contract every other package speaks.

Versioned event models, subjects, snapshots, the EventBus protocol and its
implementations (JetStream, in-memory), the embedded nats-server launcher and the
never-blocking publisher with its durable outbox. Imports no other promptlab package.
"""

from events.bus import BusError, BusUnavailable, Consumer, Delivery, EventBus, KVEntry, PublishAck
from events.models import (
    BaseEvent,
    CommandRejected,
    Event,
    EventDecodeError,
    Evidence,
    ExecutionCompleted,
    ExplorationPaused,
    ExplorationResumed,
    FeedbackReceived,
    PauseCommand,
    PromoteCommand,
    RollbackCommand,
    RoutingInfo,
    VariantPromoted,
    VariantRegistered,
    VariantRetired,
    VariantRolledBack,
    decode,
    encode,
)
from events.subjects import Bucket, Header, Subject

__all__ = [
    "BaseEvent", "Bucket", "BusError", "BusUnavailable", "CommandRejected", "Consumer",
    "Delivery", "Event", "EventBus", "EventDecodeError", "Evidence", "ExecutionCompleted",
    "ExplorationPaused", "ExplorationResumed", "FeedbackReceived", "Header", "KVEntry",
    "PauseCommand", "PromoteCommand", "PublishAck", "RollbackCommand", "RoutingInfo",
    "Subject", "VariantPromoted", "VariantRegistered", "VariantRetired", "VariantRolledBack",
    "decode", "encode",
]
