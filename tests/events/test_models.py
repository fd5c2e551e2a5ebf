"""Event models: every type round-trips, decoders are lenient forward and strict on garbage."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from promptlab.events import models
from promptlab.events.models import (
    EVENT_TYPES,
    ArmEvidence,
    BaseEvent,
    CommandRejected,
    EvaluationFailed,
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
    deterministic_event_id,
    encode,
    upcast,
)
from promptlab.events.subjects import Subject

EVIDENCE = Evidence(
    challenger=ArmEvidence(variant="v2", n=300, reward_mean=0.6),
    champion=ArmEvidence(variant="v1", n=310, reward_mean=0.5),
    p_better=0.97,
    rule="p_better>=0.95",
)

SAMPLES: list[BaseEvent] = [
    VariantRegistered(prompt_id="p", variant="v1", version="abc", model="m", template="Hi {{ x }}",
                      variables=[{"name": "x", "type": "string"}], champion=True),
    VariantRetired(prompt_id="p", variant="v3", reason="worse", evidence=EVIDENCE, trigger_sequence=9),
    ExecutionCompleted(execution_id="e1", prompt_id="p", variant="v1", model="m", provider="openai",
                       latency_ms=12.5, ttft_ms=3.0, input_tokens=10, output_tokens=20, cost_usd=0.001,
                       routing=RoutingInfo(probability=0.8, exploration=True), stream=True),
    FeedbackReceived(execution_id="e1", name="thumbs_up", value=True),
    FeedbackReceived(execution_id="e1", name="score", value=0.25),
    EvaluationFailed(execution_id="e1", prompt_id="p", errors=["judge score 7 is outside 0..1"]),
    VariantPromoted(prompt_id="p", variant="v2", previous_champion="v1", evidence=EVIDENCE),
    VariantRolledBack(prompt_id="p", variant="v2", restored="v1", reason="manual", actor="ops"),
    ExplorationPaused(prompt_id="p"),
    ExplorationResumed(prompt_id="p"),
    PromoteCommand(prompt_id="p", variant="v2"),
    RollbackCommand(prompt_id="p"),
    PauseCommand(prompt_id="p", paused=False),
    CommandRejected(command_id="c1", prompt_id="p", reason="unknown variant"),
    LifecycleCommand(prompt_id="p", variant="v2", status="deprecated", actor="alice", reason="slow"),
    VariantLifecycleChanged(prompt_id="p", variant="v2", status="deprecated", previous="active"),
    PromptRegistered(prompt_id="p", version="0123456789abcdef", actor="admin-api",
                     spec={"id": "p", "variants": [{"name": "v1", "model": "m/x", "template": "Hi"}]},
                     changes=["reward changed"]),
]  # fmt: skip


def test_samples_cover_every_event_type() -> None:
    assert {type(e) for e in SAMPLES} == set(EVENT_TYPES.values())


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__ + str(id(e) % 97))
def test_round_trip(event: BaseEvent) -> None:
    data = encode(event)
    back = decode(data)
    assert back == event and type(back) is type(event)
    assert encode(back) == data
    assert b"\n" not in data  # one event per line in the outbox
    assert isinstance(event.nats_subject, Subject)


def test_events_are_frozen() -> None:
    event = FeedbackReceived(execution_id="e", name="n", value=1.0)
    with pytest.raises(ValueError):
        event.name = "other"


def test_unknown_fields_are_ignored() -> None:
    payload = json.loads(encode(SAMPLES[2]))
    payload["field_from_the_future"] = {"x": 1}
    payload["routing"]["new_knob"] = 3
    assert decode(json.dumps(payload)) == SAMPLES[2]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "something.else"}', "unknown event type"),
        (b'{"execution_id": "e"}', "unknown event type"),
        (b'{"type": "feedback.received", "name": "n"}', "invalid feedback.received"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_bad_payloads_raise_decode_error(data: bytes, message: str) -> None:
    with pytest.raises(EventDecodeError, match=message):
        decode(data)


def test_upcasters_bring_old_payloads_up_to_date(monkeypatch: pytest.MonkeyPatch) -> None:
    def v1_to_v2(p: dict[str, Any]) -> dict[str, Any]:
        p = dict(p)
        p["value"] = p.pop("score") / 10  # v1 scored 0..10
        return p

    def v2_to_v3(p: dict[str, Any]) -> dict[str, Any]:
        return {**p, "comment": p.get("comment") or "migrated"}

    monkeypatch.setitem(models.UPCASTERS, ("feedback.received", 1), v1_to_v2)
    monkeypatch.setitem(models.UPCASTERS, ("feedback.received", 2), v2_to_v3)
    old = {"type": "feedback.received", "execution_id": "e", "name": "quality", "score": 7,
           "occurred_at": "2024-01-01T00:00:00Z"}  # fmt: skip
    event = decode(json.dumps(old))
    assert isinstance(event, FeedbackReceived)
    assert (event.value, event.comment, event.schema_version) == (0.7, "migrated", 3)
    assert event.occurred_at == datetime(2024, 1, 1, tzinfo=UTC)


def test_event_ids() -> None:
    a, b = (
        FeedbackReceived(execution_id="e", name="n", value=1.0),
        FeedbackReceived(execution_id="e", name="n", value=1.0),
    )
    assert a.event_id != b.event_id and len(a.event_id) == 32
    assert deterministic_event_id("promote", 42) == deterministic_event_id("promote", 42)
    assert deterministic_event_id("promote", 42) != deterministic_event_id("promote", 43)


def test_importing_events_does_not_load_nats_or_aiohttp() -> None:
    import subprocess
    import sys

    code = "import sys, promptlab.events; print(sorted(m for m in ('nats', 'aiohttp') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_fast_decode_agrees_with_the_general_path(event: BaseEvent) -> None:
    data = encode(event)
    # The general path: JSON to a dict, upcast, validate (decode's fallback).
    assert decode(data) == type(event).model_validate(upcast(json.loads(data))) == event


def test_an_upcaster_applies_even_when_the_old_shape_still_validates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A v1 payload that the current model accepts as it is must still be upcast.
    monkeypatch.setitem(
        models.UPCASTERS, ("feedback.received", 1), lambda p: {**p, "comment": "from v1"}
    )
    v1 = {"type": "feedback.received", "execution_id": "e", "name": "quality", "value": 0.5,
          "occurred_at": "2024-01-01T00:00:00Z"}  # fmt: skip
    event = decode(json.dumps(v1).encode())
    assert isinstance(event, FeedbackReceived)
    assert (event.comment, event.schema_version) == ("from v1", 2)
