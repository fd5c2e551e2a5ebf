"""The call flow of ``POST /v1/chat/completions``: route, render, call upstream, record.

Routed calls (``model = "promptlab/<id>"`` or header ``X-Promptlab-Prompt: <id>``):

1. ``promptlab`` is removed from the body: ``promptlab.variables`` (an object) are
   validated against the prompt's declarations, ``promptlab.subject`` (a string) is
   the app's user or session, used for sticky routing and recorded.
2. The router picks a variant; its model replaces the request's ``model`` and its
   ``params`` override the request's parameters of the same name.
3. Messages: the variant's rendered messages (system if the variant has one, then
   user) come first, followed by the app's own messages in order, minus any
   ``system`` or ``developer`` message (the template owns the instructions). So an app
   sends ``messages=[]`` on the first turn and its conversation so far on later turns.
4. Every other parameter (tools, tool_choice, response_format, temperature, n, seed,
   user, ...) passes through untouched.

Unrouted calls go to the provider their ``model`` names (``provider/model``, or the
``server.default_provider`` for a bare model name), unchanged apart from the removed
``promptlab`` field. On every route, keys that could redirect or re-credential the call
(``api_base``, ``base_url``, ``api_key``, ...) are dropped, and no client header is
forwarded: the upstream URL and key always come from the provider settings.

Every call, routed or not, gets a fresh execution id: it is the response ``id`` (also
of every stream chunk) and the ``X-Promptlab-Execution`` header, and one
ExecutionCompleted event records it (ok, error or cancelled). Events are built and
published after the response is handed to the transport (``loop.call_soon``), never
on the response path, through the never-blocking publisher.

Challenger fallback: when a challenger's call fails before anything reached the client,
the call is retried once on the champion. Two events are recorded: the challenger's
(status ``error``) and the champion's, whose ``routing.fallback_from`` names the
challenger. The client gets the champion's answer and execution id.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from events.models import CapturedContent, ExecutionCompleted, RoutingInfo
from prompts import PromptSpec, estimate_cost
from sidecar import codec
from sidecar.catalog import Catalog
from sidecar.config import ServerSettings
from sidecar.errors import BadRequest, SidecarError, UpstreamError
from sidecar.inputs import check_text, check_values
from sidecar.metrics import Metrics
from sidecar.ports import Publisher
from sidecar.router import Route, Router
from sidecar.streaming import relay
from sidecar.telemetry import Telemetry, set_attributes
from sidecar.upstream import Target, Upstreams

PROMPT_HEADER = "X-Promptlab-Prompt"
EXECUTION_HEADER = "X-Promptlab-Execution"
VARIANT_HEADER = "X-Promptlab-Variant"
MODEL_PREFIX = "promptlab/"
PROMPT_ID_KEY = web.RequestKey("promptlab_prompt", str)
"""Where a routed request keeps its prompt id (read by the access log)."""

OVERRIDE_KEYS = frozenset({
    "api_base", "base_url", "api_key", "api_version", "host", "url", "endpoint",
    "organization", "custom_llm_provider", "extra_headers", "headers", "timeout",
    "num_retries", "azure_ad_token", "aws_access_key_id", "aws_secret_access_key",
    "aws_session_token", "aws_region_name", "vertex_project", "vertex_location",
    "vertex_credentials", "litellm_params", "metadata_api_base",
})  # fmt: skip
"""Body keys that could point a call elsewhere or change its credentials (litellm reads
many of them as arguments); dropped from every request."""

SYSTEM_ROLES = frozenset({"system", "developer"})


def new_execution_id() -> str:
    """32 random hex characters (as ``uuid4().hex``, at a third of the cost)."""
    return os.urandom(16).hex()


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; 400 otherwise."""
    try:
        body = codec.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    return body


def parse_meta(meta: Any) -> tuple[dict[str, Any] | None, str | None]:
    """``(variables, subject)`` from the body's ``promptlab`` field."""
    if meta is None:
        return None, None
    if not isinstance(meta, dict):
        raise BadRequest(
            '\'promptlab\' must be an object: {"variables": {...}, "subject": "..."}',
            param="promptlab",
        )
    variables = meta.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("'promptlab.variables' must be an object", param="promptlab.variables")
    if variables:
        check_values(variables, "promptlab.variables")
    subject = meta.get("subject")
    if subject is not None:
        if isinstance(subject, bool) or not isinstance(subject, str | int):
            raise BadRequest("'promptlab.subject' must be a string", param="promptlab.subject")
        subject = check_text(str(subject), "promptlab.subject")
    return variables, subject


def app_messages(body: dict[str, Any]) -> list[Any]:
    """The app's messages as a list (400 when not a list)."""
    messages = body.get("messages")
    if messages is None:
        return []
    if not isinstance(messages, list):
        raise BadRequest("'messages' must be an array", param="messages")
    return messages


def with_execution_id(data: dict[str, Any], raw: bytes | None, execution_id: str) -> bytes:
    """The response body with ``id`` set to the execution id.

    The upstream's bytes are kept when its id can be swapped in place (the usual case:
    no second JSON encoding on the hot path); otherwise the parsed body is re-encoded.
    """
    old = data.get("id")
    if raw is not None and isinstance(old, str) and old:
        quoted = json.dumps(old).encode()
        for needle in (b'"id":' + quoted, b'"id": ' + quoted):
            at = raw.find(needle)
            if at != -1:
                return raw[:at] + b'"id":"' + execution_id.encode() + b'"' + raw[at + len(needle) :]
    data["id"] = execution_id
    return codec.dumps(data)


def _truncate(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit], True)


@dataclass(slots=True)
class _Call:
    """One upstream attempt, what its ExecutionCompleted will say."""

    execution_id: str
    target: Target
    model: str
    prompt_id: str | None
    variant: str | None
    version: str | None
    subject: str | None
    stream: bool
    routing: RoutingInfo | None
    started: float
    messages: list[Any]

    def headers(self) -> dict[str, str]:
        headers = {EXECUTION_HEADER: self.execution_id}
        if self.variant is not None:
            headers[VARIANT_HEADER] = self.variant
        return headers


class Proxy:
    """The chat completion flow of one app, with its collaborators."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        router: Router,
        upstreams: Upstreams,
        publisher: Publisher,
        metrics: Metrics,
        telemetry: Telemetry,
        server: ServerSettings,
    ) -> None:
        self.catalog = catalog
        self.router = router
        self.upstreams = upstreams
        self.publisher = publisher
        self.metrics = metrics
        self.telemetry = telemetry
        self.server = server

    # ------------------------------------------------------------------ entry

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """Handle one chat completion request."""
        body = parse_body(await request.read())
        meta = body.pop("promptlab", None)
        for key in OVERRIDE_KEYS.intersection(body):
            del body[key]
        model = body.get("model")
        prompt_id = request.headers.get(PROMPT_HEADER)
        if not prompt_id and isinstance(model, str) and model.startswith(MODEL_PREFIX):
            prompt_id = model[len(MODEL_PREFIX) :]
        if prompt_id:
            request[PROMPT_ID_KEY] = prompt_id  # for the access log
        with self.telemetry.span(
            f"chat {model}",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
                "promptlab.prompt_id": prompt_id,
            },
            headers=request.headers,
        ):
            if prompt_id:
                return await self._routed(request, prompt_id, body, meta)
            return await self._unrouted(request, body, meta)

    async def _unrouted(
        self, request: web.Request, body: dict[str, Any], meta: Any
    ) -> web.StreamResponse:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest(
                "'model' is required: 'promptlab/<prompt_id>' or 'provider/model'", param="model"
            )
        _, subject = parse_meta(meta)
        target = self.upstreams.resolve(model)
        call = _Call(
            new_execution_id(),
            target,
            target.qualified,
            None,
            None,
            None,
            subject,
            body.get("stream") is True,
            None,
            time.perf_counter(),
            app_messages(body),
        )
        return await self._send(request, call, body)

    async def _routed(
        self, request: web.Request, prompt_id: str, body: dict[str, Any], meta: Any
    ) -> web.StreamResponse:
        prompt = self.catalog.require(prompt_id)
        variables, subject = parse_meta(meta)
        kept = [
            m
            for m in app_messages(body)
            if not (isinstance(m, dict) and m.get("role") in SYSTEM_ROLES)
        ]
        values = self.catalog.validate(prompt, variables)
        with self.telemetry.span("promptlab.route"):
            decision = self.router.decide(prompt_id, subject)
        try:
            return await self._attempt(request, prompt, decision, values, body, kept, subject, None)
        except UpstreamError:
            if not decision.exploration:
                raise
        # The challenger failed before the client saw a byte: the champion answers.
        champion = self.router.champion(prompt_id)
        return await self._attempt(
            request, prompt, champion, values, body, kept, subject, decision.variant
        )

    async def _attempt(
        self,
        request: web.Request,
        prompt: PromptSpec,
        decision: Route,
        values: dict[str, Any],
        body: dict[str, Any],
        kept: list[Any],
        subject: str | None,
        fallback_from: str | None,
    ) -> web.StreamResponse:
        variant = prompt.variant(decision.variant)
        target = self.upstreams.resolve(variant.model, strict=True)
        with self.telemetry.span("promptlab.render", {"promptlab.variant": variant.name}):
            messages = self.catalog.render(prompt, variant, values)
        if kept:
            messages = messages + kept
        upstream_body = dict(body)
        upstream_body.update(variant.params)
        upstream_body["messages"] = messages
        call = _Call(
            new_execution_id(),
            target,
            variant.model,
            prompt.id,
            variant.name,
            variant.version,
            subject,
            body.get("stream") is True,
            decision.routing_info(fallback_from),
            time.perf_counter(),
            messages,
        )
        return await self._send(request, call, upstream_body)

    # ------------------------------------------------------------------ upstream

    async def _send(
        self, request: web.Request, call: _Call, body: dict[str, Any]
    ) -> web.StreamResponse:
        if call.stream:
            return await self._send_stream(request, call, body)
        try:
            with self.telemetry.span(
                "promptlab.upstream",
                {
                    "gen_ai.provider.name": call.target.provider,
                    "gen_ai.request.model": call.target.model,
                },
            ):
                data, raw = await self.upstreams.complete(call.target, body)
        except SidecarError as err:
            self._finish(call, "error", error=err)
            err.headers = call.headers()
            raise
        except asyncio.CancelledError:
            self._finish(call, "cancelled")
            raise
        payload = with_execution_id(data, raw, call.execution_id)
        output = None
        if self.server.capture_content:
            choices = data.get("choices") or [{}]
            output = str(((choices[0] or {}).get("message") or {}).get("content") or "")
        self._finish(
            call, "ok", usage=data.get("usage"), output=output, response_model=data.get("model")
        )
        return web.Response(body=payload, content_type="application/json", headers=call.headers())

    async def _send_stream(
        self, request: web.Request, call: _Call, body: dict[str, Any]
    ) -> web.StreamResponse:
        options = body.get("stream_options")
        client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        body = {
            **body,
            "stream_options": {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            },
        }
        try:
            with self.telemetry.span(
                "promptlab.upstream",
                {
                    "gen_ai.provider.name": call.target.provider,
                    "gen_ai.request.model": call.target.model,
                },
            ):
                stream = await self.upstreams.stream(call.target, body)
        except SidecarError as err:
            self._finish(call, "error", error=err)
            err.headers = call.headers()
            raise
        except asyncio.CancelledError:
            self._finish(call, "cancelled")
            raise
        try:
            response, outcome = await relay(
                request,
                stream,
                execution_id=call.execution_id,
                headers=call.headers(),
                client_wants_usage=client_wants_usage,
                capture=self.server.capture_content,
                started=call.started,
                redactor=self.upstreams.redactor,
            )
        except asyncio.CancelledError:
            self._finish(call, "cancelled")
            raise
        output = "".join(outcome.output) if self.server.capture_content else None
        self._finish(
            call,
            outcome.status,
            usage=outcome.usage,
            error=outcome.error,
            ttft_ms=outcome.ttft_ms,
            output=output,
        )
        return response

    # ------------------------------------------------------------------ recording

    def _finish(
        self,
        call: _Call,
        status: str,
        *,
        usage: Any = None,
        error: SidecarError | None = None,
        ttft_ms: float | None = None,
        output: str | None = None,
        response_model: Any = None,
    ) -> None:
        latency_ms = (time.perf_counter() - call.started) * 1000.0
        input_tokens = output_tokens = 0
        if isinstance(usage, dict):
            input_tokens = int(usage.get("prompt_tokens") or 0)
            output_tokens = int(usage.get("completion_tokens") or 0)
        error_kind = None
        http_status = 200 if status == "ok" else None
        if error is not None:
            error_kind = getattr(error, "kind", None) or error.code or error.type
            http_status = error.status
        elif status == "cancelled":
            error_kind = "client_disconnected"
        cost = (
            estimate_cost(call.model, input_tokens, output_tokens)
            if input_tokens or output_tokens
            else 0.0
        )
        self.metrics.observe(
            call.prompt_id,
            call.variant,
            status,
            latency_ms,
            input_tokens,
            output_tokens,
            cost,
            error_kind,
        )
        args = (
            call,
            status,
            latency_ms,
            ttft_ms,
            input_tokens,
            output_tokens,
            cost,
            error_kind,
            http_status,
            output,
        )
        if self.telemetry.enabled:
            self._publish(*args)
        else:
            # After the handler returns, aiohttp writes the response in the same task
            # step; call_soon runs after it, so the event costs the client nothing.
            asyncio.get_running_loop().call_soon(self._publish, *args)

    def _publish(
        self,
        call: _Call,
        status: str,
        latency_ms: float,
        ttft_ms: float | None,
        input_tokens: int,
        output_tokens: int,
        cost: float,
        error_kind: str | None,
        http_status: int | None,
        output: str | None,
    ) -> None:
        content = None
        if self.server.capture_content:
            content = self._capture(call.messages, output)
        event = ExecutionCompleted(
            execution_id=call.execution_id,
            prompt_id=call.prompt_id,
            variant=call.variant,
            version=call.version,
            model=call.model,
            provider=call.target.provider,
            subject=call.subject,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost,
            status=status,  # type: ignore[arg-type]
            error_kind=error_kind,
            http_status=http_status,
            stream=call.stream,
            routing=call.routing,
            content=content,
        )
        with self.telemetry.span("promptlab.publish") as span:
            set_attributes(
                span,
                {
                    "gen_ai.response.id": call.execution_id,
                    "gen_ai.usage.input_tokens": input_tokens,
                    "gen_ai.usage.output_tokens": output_tokens,
                    "promptlab.status": status,
                },
            )
            self.publisher.publish(event)

    def _capture(self, messages: list[Any], output: str | None) -> CapturedContent:
        limit = self.server.capture_max_chars
        truncated = False
        kept: list[dict[str, Any]] = []
        for message in messages:
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, str):
                content, cut = _truncate(content, limit)
                truncated |= cut
            kept.append({**message, "content": content})
        if output is not None:
            output, cut = _truncate(output, limit)
            truncated |= cut
        return CapturedContent(messages=kept, output=output, truncated=truncated)
