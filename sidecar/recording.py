"""Recording: every call, failed or not, becomes exactly one ExecutionCompleted.

A call is described by a :class:`Call` (what was asked, set before the model is called)
and an :class:`Outcome` (what happened). :meth:`Recorder.finish` observes the metrics
at once and publishes the event after the response is handed to the transport
(``loop.call_soon``), never on the response path, through the never-blocking publisher.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from promptlab.events.models import CapturedContent, ExecutionCompleted, ModelAttempt, RoutingInfo
from promptlab.prompts import estimate_cost
from promptlab.providers import Attempt, Redactor
from promptlab.providers.core import usage_tokens
from promptlab.sidecar.config import ServerSettings
from promptlab.sidecar.metrics import Metrics
from promptlab.sidecar.ports import Publisher
from promptlab.sidecar.telemetry import Telemetry, set_attributes

EXECUTION_HEADER = "X-Promptlab-Execution"
VARIANT_HEADER = "X-Promptlab-Variant"

Status = Literal["ok", "error", "cancelled"]


@dataclass(slots=True)
class Call:
    """One execution as it was asked for."""

    execution_id: str
    provider: str
    model: str
    """The ``provider/model`` asked for."""
    prompt_id: str | None = None
    variant: str | None = None
    version: str | None = None
    subject: str | None = None
    stream: bool = False
    routing: RoutingInfo | None = None
    messages: list[Any] = field(default_factory=list)
    endpoint: str | None = None
    """``embeddings``, ``completions`` or ``responses`` for passthrough calls."""
    started: float = field(default_factory=time.perf_counter)
    capture: bool = False
    """Capture this call's content even when capture is off (its prompt is evaluated
    online, or captures production examples)."""
    variables: dict[str, Any] | None = None
    """The call's validated variables, when its prompt captures production examples
    (``[learning] capture`` or ``server.capture_content``); redacted when recorded."""
    variable_values: dict[str, Any] | None = None
    """Variable values its prompt lets analytics record (see :meth:`Catalog.recorded_values`)."""
    demos: list[str] | None = None
    """Ids of the demonstrations shown (None: its variant shows none)."""

    def headers(self) -> dict[str, str]:
        headers = {EXECUTION_HEADER: self.execution_id}
        if self.variant is not None:
            headers[VARIANT_HEADER] = self.variant
        return headers


@dataclass(slots=True)
class Outcome:
    """What happened to one execution."""

    status: Status = "ok"
    error_kind: str | None = None
    http_status: int | None = None
    model: str | None = None
    """The ``provider/model`` that answered, when not the one asked for (a fallback)."""
    attempts: list[Attempt] = field(default_factory=list)
    usage: Any = None
    cost_usd: float | None = None
    """The provider's own cost when it knows one (litellm); else estimated from usage."""
    ttft_ms: float | None = None
    output: str | None = None
    fell_back_to: str | None = None

    @classmethod
    def failed(
        cls, kind: str | None, http_status: int | None, attempts: list[Attempt] | None = None
    ) -> Outcome:
        return cls("error", kind, http_status, attempts=list(attempts or ()))

    @classmethod
    def cancelled(cls) -> Outcome:
        return cls("cancelled", "client_disconnected")


def _truncate(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit], True)


def _cut_strings(value: Any, limit: int) -> tuple[Any, bool]:
    """``value`` with every string in it cut to ``limit`` characters; was any cut?"""
    if isinstance(value, str):
        return _truncate(value, limit)
    if isinstance(value, list):
        items = [_cut_strings(v, limit) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    if isinstance(value, dict):
        pairs = {k: _cut_strings(v, limit) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(c for _, c in pairs.values())
    return value, False


class Recorder:
    """Turns (Call, Outcome) into metrics and one ExecutionCompleted."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        metrics: Metrics,
        telemetry: Telemetry,
        server: ServerSettings,
        redactor: Redactor | None = None,
    ) -> None:
        self.publisher = publisher
        self.metrics = metrics
        self.telemetry = telemetry
        self.server = server
        self.redactor = redactor or Redactor()

    def finish(self, call: Call, outcome: Outcome) -> None:
        latency_ms = (time.perf_counter() - call.started) * 1000.0
        if outcome.status == "ok" and outcome.http_status is None:
            outcome.http_status = 200  # each Outcome belongs to one call
        model = outcome.model or call.model
        input_tokens, output_tokens = usage_tokens(outcome.usage)
        if outcome.cost_usd is not None:
            cost = outcome.cost_usd
        elif input_tokens or output_tokens:
            cost = estimate_cost(model, input_tokens, output_tokens)
        else:
            cost = 0.0
        self.metrics.observe(
            call.prompt_id,
            call.variant,
            outcome.status,
            latency_ms,
            input_tokens,
            output_tokens,
            cost,
            outcome.error_kind,
        )
        event = (call, outcome, model, latency_ms, input_tokens, output_tokens, cost)
        if self.telemetry.enabled:
            self._publish(*event)
        else:
            # After the handler returns, aiohttp writes the response in the same task
            # step; call_soon runs after it, so the event costs the client nothing.
            asyncio.get_running_loop().call_soon(self._publish, *event)

    def _publish(
        self,
        call: Call,
        outcome: Outcome,
        model: str,
        latency_ms: float,
        input_tokens: int,
        output_tokens: int,
        cost: float,
    ) -> None:
        content = None
        if self.server.capture_content or call.capture:
            content = self._capture(call.messages, outcome.output, call.variables)
        attempts = (
            [ModelAttempt(model=m, error_kind=k) for m, k in outcome.attempts]
            if len(outcome.attempts) > 1
            else []
        )
        event = ExecutionCompleted(
            execution_id=call.execution_id,
            prompt_id=call.prompt_id,
            variant=call.variant,
            version=call.version,
            model=model,
            provider=model.partition("/")[0] if outcome.model else call.provider,
            subject=call.subject,
            latency_ms=latency_ms,
            ttft_ms=outcome.ttft_ms,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            status=outcome.status,
            error_kind=outcome.error_kind,
            http_status=outcome.http_status,
            stream=call.stream,
            routing=call.routing,
            content=content,
            fell_back_to=outcome.fell_back_to,
            attempts=attempts,
            endpoint=call.endpoint,
            variable_values=call.variable_values,
            demos=call.demos,
        )
        if not self.telemetry.enabled:  # no span, no attributes built for nobody
            self.publisher.publish(event)
            return
        with self.telemetry.span("promptlab.publish") as span:
            set_attributes(
                span,
                {
                    "gen_ai.response.id": call.execution_id,
                    "gen_ai.usage.input_tokens": input_tokens,
                    "gen_ai.usage.output_tokens": output_tokens,
                    "promptlab.status": outcome.status,
                },
            )
            self.publisher.publish(event)

    def _capture(
        self, messages: list[Any], output: str | None, variables: dict[str, Any] | None
    ) -> CapturedContent:
        """The call's content for its event: redacted first (provider keys, key-shaped
        strings, ``server.redact_patterns``), then cut to ``capture_max_chars``."""
        limit = self.server.capture_max_chars
        redact = self.redactor.redact_value
        truncated = False
        kept: list[dict[str, Any]] = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            message = redact(message)
            content = message.get("content")
            if isinstance(content, str):
                content, cut = _truncate(content, limit)
                truncated |= cut
            kept.append({**message, "content": content})
        if output is not None:
            output, cut = _truncate(self.redactor.redact(output), limit)
            truncated |= cut
        if variables is not None:
            variables, cut = _cut_strings(redact(variables), limit)
            truncated |= cut
        return CapturedContent(
            messages=kept, output=output, truncated=truncated, variables=variables
        )
