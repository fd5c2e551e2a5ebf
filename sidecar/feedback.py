"""``POST /v1/feedback``: what a feedback value means, answered when it arrives.

The sidecar remembers (bounded, most recent first) which prompt each execution it
served belongs to, and which feedback it has received. So it can answer:

* **200** ``"status": "accepted"`` for an execution it served: the value is checked
  against the prompt's ``[reward] scale`` (a value off the scale, or of the wrong type,
  is a 400 naming the scale), and the answer says whether this feedback is the one that
  counts under ``learner.feedback_repeat`` (``last``: always this one; ``first``: only if
  no earlier feedback for this execution and name was received here).
* **202** ``"status": "pending"`` for an execution it does not know (served by another
  replica, not published yet, or a wrong id): the learner joins it when the execution
  arrives within ``learner.feedback_wait_s``, and otherwise drops it and counts it
  (``promptlab stats``, ``promptlab_learner_feedback_dropped_total`` in ``/metrics``).

A ``demonstration`` feedback is a correction: its value is the answer the call should
have given (text, capped at ``server.capture_max_chars``, redacted), and it is refused
(400) for a known prompt that does not capture production examples. A text value under
any other name is a 400.

The learner applies the same rules (:func:`prompts.feedback.normalise_feedback`) to
everything, so a replica's limited memory changes only how early a problem is reported.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from promptlab.events.kinds import DEMONSTRATION
from promptlab.events.models import BaseEvent, ExecutionCompleted, FeedbackReceived
from promptlab.prompts.feedback import FeedbackValueError, normalise_feedback, scale_text
from promptlab.providers import Redactor
from promptlab.sidecar.catalog import Catalog
from promptlab.sidecar.errors import BadRequest
from promptlab.sidecar.inputs import check_text
from promptlab.sidecar.ports import Publisher

Repeat = Literal["first", "last"]

MAX_FEEDBACK_INT = 2**53
"""Integer feedback values beyond this lose precision as floats (and ``float()`` of a
401-digit integer raises ``OverflowError``): refused."""


@dataclass(frozen=True, slots=True)
class FeedbackPolicy:
    """The learner's feedback settings, which the sidecar's answers describe."""

    repeat: Repeat = "last"
    """``learner.feedback_repeat``."""
    wait_s: float = 3600.0
    """``learner.feedback_wait_s``."""


class FeedbackDesk:
    """Recent executions (id -> prompt) and received feedback (id, name), both bounded."""

    def __init__(
        self,
        catalog: Catalog,
        policy: FeedbackPolicy | None = None,
        *,
        capacity: int = 100_000,
        redactor: Redactor | None = None,
        text_limit: int = 2000,
        capture_all: bool = False,
    ) -> None:
        self.catalog = catalog
        self.policy = policy or FeedbackPolicy()
        self.capacity = capacity
        self.redactor = redactor or Redactor()
        self.text_limit = text_limit
        """Longest correction accepted (``server.capture_max_chars``)."""
        self.capture_all = capture_all
        """``server.capture_content``: every prompt captures production examples."""
        self._executions: OrderedDict[str, str] = OrderedDict()
        self._received: OrderedDict[tuple[str, str], None] = OrderedDict()

    def served(self, event: ExecutionCompleted) -> None:
        """Remember a routed execution this sidecar published."""
        if event.prompt_id is None:
            return
        self._executions[event.execution_id] = event.prompt_id
        if len(self._executions) > self.capacity:
            self._executions.popitem(last=False)

    def receive(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], FeedbackReceived]:
        """Check one feedback body: ``(status, answer, event to publish)``; 400 raises."""
        event = feedback_event(body, self.redactor, self.text_limit)
        policy = self.policy
        key = (event.execution_id, event.name)
        repeated = key in self._received
        answer: dict[str, Any] = {
            "id": event.event_id,
            "object": "feedback",
            "execution_id": event.execution_id,
            "repeat_policy": policy.repeat,
            "repeated": repeated,
        }
        prompt_id = self._executions.get(event.execution_id)
        spec = self.catalog.get(prompt_id) if prompt_id is not None else None
        if spec is None:
            answer.update(
                status="pending",
                wait_s=policy.wait_s,
                counts=_counts(policy.repeat, repeated),
                message=(
                    "execution not known to this sidecar (yet): the learner counts this "
                    f"feedback if the execution arrives within {policy.wait_s:g}s, and "
                    "drops it otherwise"
                ),
            )
            status = 202
        else:
            answer.update(status="accepted", prompt_id=spec.id)
            if event.name == DEMONSTRATION:
                if not (self.capture_all or spec.learning.capture):
                    raise BadRequest(
                        f"prompt {spec.id!r} does not capture production examples, so a "
                        "correction has no call to attach to: set [learning] capture = true",
                        param="name",
                        code="capture_off",
                    )
                answer["counts"] = "a correction: the call's example takes this answer (reward 1.0)"
            elif event.name == spec.reward.feedback:
                scale = spec.reward.scale
                try:
                    answer["reward_value"] = normalise_feedback(event.value, scale)
                except FeedbackValueError as exc:
                    raise BadRequest(
                        f"'value' {exc} (prompt {spec.id!r}, [reward] scale "
                        f"{scale_text(exc.scale)})",
                        param="value",
                        code="value_off_scale",
                    ) from None
                answer["scale"] = list(scale or (0.0, 1.0))
                answer["counts"] = _counts(policy.repeat, repeated)
            else:
                answer["counts"] = (
                    f"not a reward: prompt {spec.id!r} learns from {spec.reward.feedback!r}"
                )
            status = 200
        self._received[key] = None
        if len(self._received) > self.capacity:
            self._received.popitem(last=False)
        return status, answer, event


def _counts(repeat: Repeat, repeated: bool) -> str:
    if repeat == "last":
        return "this feedback (it replaces any earlier one for this execution and name)"
    if repeated:
        return "the first feedback for this execution and name (this one is ignored)"
    return "this feedback, unless an earlier one for this execution and name arrived elsewhere"


class RecordingPublisher:
    """A :class:`~sidecar.ports.Publisher` that tells the desk what this sidecar served."""

    def __init__(self, inner: Publisher, desk: FeedbackDesk) -> None:
        self.inner = inner
        self.desk = desk

    def publish(self, event: BaseEvent) -> None:
        if isinstance(event, ExecutionCompleted):
            self.desk.served(event)
        self.inner.publish(event)

    async def publish_durable(self, events: Sequence[BaseEvent], timeout: float = 5.0) -> str:
        return await self.inner.publish_durable(events, timeout)

    async def start(self) -> None:
        await self.inner.start()

    async def flush(self, timeout: float = 5.0) -> object:
        return await self.inner.flush(timeout)

    async def close(self) -> None:
        await self.inner.close()

    @property
    def healthy(self) -> bool:
        return self.inner.healthy

    @property
    def outbox_active(self) -> bool:
        return self.inner.outbox_active

    def __getattr__(self, name: str) -> Any:
        # Counters and gauges of the wrapped publisher (queue depth, outbox, failures)
        # for /metrics: the wrapper only adds what the feedback desk needs.
        return getattr(self.inner, name)


MAX_FEEDBACK_INT = 2**53
"""Integer feedback values beyond this lose precision as floats (and ``float()`` of a
401-digit integer raises ``OverflowError``): refused."""


def feedback_event(
    body: dict[str, Any], redactor: Redactor | None = None, text_limit: int = 2000
) -> FeedbackReceived:
    """Validate ``{"execution_id", "name", "value", "comment"?}`` into an event (400 otherwise).

    ``value`` is a boolean or a finite number, except under the name ``demonstration``
    (a correction), where it is the answer the call should have given: a non-empty
    string of at most ``text_limit`` characters, carried redacted in the event's
    ``text``. A comment is redacted too.
    """
    execution_id = body.get("execution_id")
    if not isinstance(execution_id, str) or not execution_id.strip():
        raise BadRequest(
            "'execution_id' must be a non-empty string (the response id or X-Promptlab-Execution)",
            param="execution_id",
        )
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest(
            "'name' must be a non-empty string (e.g. the prompt's reward feedback name)",
            param="name",
        )
    value = body.get("value")
    redact = (redactor or Redactor()).redact
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise BadRequest("'comment' must be a string", param="comment")
    if comment is not None:
        check_text(comment, "comment")
    if name.strip() == DEMONSTRATION:
        return _correction(execution_id, value, comment, redact, text_limit)
    if isinstance(value, str):
        raise BadRequest(
            f"'value' must be a boolean or a finite number; a text value is accepted only "
            f"under the name {DEMONSTRATION!r} (the answer the call should have given)",
            param="value",
            code="text_value",
        )
    if not isinstance(value, bool) and isinstance(value, int) and abs(value) > MAX_FEEDBACK_INT:
        raise BadRequest("'value' is out of range", param="value")
    if not isinstance(value, bool | int | float) or (
        not isinstance(value, bool) and not math.isfinite(value)
    ):
        raise BadRequest("'value' must be a boolean or a finite number", param="value")
    check_text(execution_id, "execution_id")
    check_text(name, "name")
    return FeedbackReceived(
        execution_id=execution_id.strip(),
        name=name.strip(),
        value=value if isinstance(value, bool) else float(value),
        comment=None if comment is None else redact(comment),
    )


def _correction(
    execution_id: str,
    value: Any,
    comment: str | None,
    redact: Callable[[str], str],
    text_limit: int,
) -> FeedbackReceived:
    """A ``demonstration`` feedback: the reviewer's answer, checked, capped and redacted."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(
            f"'value' of a {DEMONSTRATION!r} feedback must be the answer the call should "
            "have given (a non-empty string)",
            param="value",
        )
    if len(value) > text_limit:
        raise BadRequest(
            f"'value' is {len(value)} characters; a correction may have at most "
            f"{text_limit} (server.capture_max_chars)",
            param="value",
            code="value_too_long",
        )
    check_text(value, "value")
    check_text(execution_id, "execution_id")
    return FeedbackReceived(
        execution_id=execution_id.strip(),
        name=DEMONSTRATION,
        value=True,
        text=redact(value),
        comment=None if comment is None else redact(comment),
    )
