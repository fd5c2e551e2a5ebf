"""The call flow of ``POST /v1/chat/completions``: route, render, call the model, record.

Routed calls (``model = "promptlab/<id>"`` or header ``X-Promptlab-Prompt: <id>``): the
router picks a variant, whose model and params replace the request's (see
:mod:`sidecar.shaping`). Unrouted calls go to the provider their ``model`` names
(``provider/model``, or ``server.default_provider`` for a bare model name).

Every call, routed or not, gets a fresh execution id: it is the response ``id`` (also
of every stream chunk) and the ``X-Promptlab-Execution`` header, and one
ExecutionCompleted records it (ok, error or cancelled; see :mod:`sidecar.recording`).

Model fallbacks (a provider's ``fallbacks``) happen inside :class:`providers.Providers`:
the execution records the model that answered and every attempt.

A routed variant whose template cannot use the call's (valid) values, say ``{{ items |
first }}`` with an empty list, is the caller's 400 ``template_render_failed`` naming the
variables (see :func:`sidecar.catalog.render_failed`), recorded as an execution of that
variant with status ``error``: the call was routed, and a variant that fails on input
its prompt accepts should pay for it in its statistics. The template's own message goes
to the log, not to the caller.

Variant fallback: when a routed call's variant cannot answer before anything reached
the client (its provider failed, or is not configured, or its template cannot render
the values), and it is not the champion, the call is retried once on the champion. Two executions are recorded: the routed
variant's (status ``error``, ``fell_back_to`` naming the champion, so its statistics
count a failure) and the champion's, whose ``routing.fallback_from`` names the routed
variant. The client gets the champion's answer and execution id.

Why one module of this size: one routed call (parse, route, render, call, fall back,
record, answer, streamed or not) reads top to bottom here; its pieces that stand alone
already live beside it (shaping, recording, completions, binding).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple

from aiohttp import web

from promptlab.prompts import PromptSpec
from promptlab.providers import ProviderError, Providers
from promptlab.sidecar import codec
from promptlab.sidecar.auth import KeyRing
from promptlab.sidecar.binding import ExecutionIds
from promptlab.sidecar.catalog import Catalog
from promptlab.sidecar.completions import chat_as_completion, completion_as_chat
from promptlab.sidecar.config import ServerSettings
from promptlab.sidecar.demos import DemoPools
from promptlab.sidecar.errors import BadRequest, RenderFailed, from_provider
from promptlab.sidecar.recording import EXECUTION_HEADER, VARIANT_HEADER, Call, Outcome, Recorder
from promptlab.sidecar.router import Route, Router
from promptlab.sidecar.shaping import (
    app_messages,
    parse_body,
    parse_meta,
    routed_body,
    routed_messages,
    split_messages,
    strip_overrides,
    with_execution_id,
    with_stream_usage,
)
from promptlab.sidecar.streaming import relay
from promptlab.sidecar.telemetry import Telemetry

log = logging.getLogger(__name__)

PROMPT_HEADER = "X-Promptlab-Prompt"
MODEL_PREFIX = "promptlab/"
WARNED_MAX = 1024
"""Most (variant version, cause) pairs a proxy remembers having warned about."""
PROMPT_ID_KEY = web.RequestKey("promptlab_prompt", str)
"""Where a routed request keeps its prompt id (read by the access log)."""

# Re-exported for the modules that import them from here.
__all__ = [
    "EXECUTION_HEADER",
    "MODEL_PREFIX",
    "PROMPT_HEADER",
    "VARIANT_HEADER",
    "Proxy",
    "parse_body",
]


def routed_prompt(request: web.Request, body: dict[str, Any]) -> str | None:
    """The prompt a call is routed to: header ``X-Promptlab-Prompt``, else a ``model``
    of ``promptlab/<id>``; None for a call that is passed through."""
    prompt_id = request.headers.get(PROMPT_HEADER)
    model = body.get("model")
    if not prompt_id and isinstance(model, str) and model.startswith(MODEL_PREFIX):
        prompt_id = model[len(MODEL_PREFIX) :]
    return prompt_id or None


class _Recorded(NamedTuple):
    """What a routed call leaves in its event besides its outcome."""

    values: dict[str, Any] | None
    """Variable values analytics may record (:meth:`Catalog.recorded_values`)."""
    variables: dict[str, Any] | None
    """The caller's variables, when the prompt captures production examples."""


class _Unanswered(Exception):
    """A routed attempt failed before the client saw anything (not yet recorded)."""

    def __init__(self, call: Call, outcome: Outcome) -> None:
        super().__init__(outcome.error_kind)
        self.call, self.outcome = call, outcome


class Proxy:
    """The chat completion flow of one app, with its collaborators."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        router: Router,
        providers: Providers,
        recorder: Recorder,
        telemetry: Telemetry,
        server: ServerSettings,
        ids: ExecutionIds | None = None,
        demos: DemoPools | None = None,
    ) -> None:
        self.catalog = catalog
        self.ids = ids or ExecutionIds(KeyRing([]), KeyRing([]))
        """Issues execution ids (bound to the caller's key when client keys are set)."""
        self.demos = demos if demos is not None else DemoPools(providers.redactor)
        self.router = router
        self.providers = providers
        self.recorder = recorder
        self.telemetry = telemetry
        self.server = server
        self._warned: set[tuple[str | None, str | None, str | None, str]] = set()

    # ------------------------------------------------------------------ entry

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """Handle one chat completion request."""
        body = strip_overrides(parse_body(await request.read()))
        meta = body.pop("promptlab", None)
        model = body.get("model")
        prompt_id = routed_prompt(request, body)
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
        try:
            target = self.providers.resolve(model, strict=False)
        except ProviderError as err:
            raise from_provider(err) from None
        call = Call(
            self.ids.new(request.headers.get("Authorization")),
            target.provider,
            target.qualified,
            subject=subject,
            stream=body.get("stream") is True,
            messages=app_messages(body),
        )
        return await self._send(request, call, body, strict=False)

    async def text_completion(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        """A routed call on ``POST /v1/completions`` (LlamaIndex's ``OpenAILike`` calls
        there by default): served as a chat completion of the picked variant, answered in
        the ``text_completion`` shape (see :mod:`sidecar.completions`)."""
        prompt_id = routed_prompt(request, body)
        assert prompt_id is not None  # the caller routes only calls that name a prompt
        request[PROMPT_ID_KEY] = prompt_id
        meta = body.pop("promptlab", None)
        chat = completion_as_chat(body)
        with self.telemetry.span(
            f"completions {body.get('model')}",
            {"gen_ai.operation.name": "text_completion", "promptlab.prompt_id": prompt_id},
            headers=request.headers,
        ):
            response = await self._routed(request, prompt_id, chat, meta, "completions")
        assert isinstance(response, web.Response)  # not streamed: refused before
        raw = response.body
        assert isinstance(raw, bytes)  # the JSON answer the proxy built
        response.body = codec.dumps(chat_as_completion(codec.loads(raw)))
        return response

    async def _routed(
        self,
        request: web.Request,
        prompt_id: str,
        body: dict[str, Any],
        meta: Any,
        endpoint: str | None = None,
    ) -> web.StreamResponse:
        prompt = self.catalog.require(prompt_id)
        variables, subject = parse_meta(meta)
        kept = split_messages(body)
        values = self.catalog.validate(prompt, variables)
        recorded = self.catalog.recorded_values(prompt, values, self.providers.redactor)
        # Production examples keep what the caller sent (validated: declared names
        # only), not the formatted values, so a demonstration re-renders them once.
        record = _Recorded(
            recorded,
            dict(variables or {})
            if self.server.capture_content or prompt.learning.capture
            else None,
        )
        with self.telemetry.span("promptlab.route"):
            decision = self.router.decide(prompt_id, subject)
        champion = self.router.champion(prompt_id)
        can_fall_back = decision.variant != champion.variant
        try:
            return await self._attempt(
                request,
                prompt,
                decision,
                values,
                record,
                body,
                kept,
                subject,
                None,
                can_fall_back,
                endpoint,
            )
        except _Unanswered as failed:
            # The routed variant failed before the client saw a byte: the champion answers.
            failed.outcome.fell_back_to = champion.variant
            self.recorder.finish(failed.call, failed.outcome)
        return await self._attempt(
            request,
            prompt,
            champion,
            values,
            record,
            body,
            kept,
            subject,
            decision.variant,
            False,
            endpoint,
        )

    async def _attempt(
        self,
        request: web.Request,
        prompt: PromptSpec,
        decision: Route,
        values: dict[str, Any],
        record: _Recorded,
        body: dict[str, Any],
        kept: tuple[list[Any], list[Any]],
        subject: str | None,
        fallback_from: str | None,
        can_fall_back: bool,
        endpoint: str | None = None,
    ) -> web.StreamResponse:
        variant = prompt.variant(decision.variant)
        call = Call(
            self.ids.new(request.headers.get("Authorization")),
            variant.model.partition("/")[0],
            variant.model,
            prompt_id=prompt.id,
            variant=variant.name,
            version=variant.version,
            subject=subject,
            stream=body.get("stream") is True,
            routing=decision.routing_info(fallback_from),
            capture=prompt.evaluation is not None or prompt.learning.capture,
            variables=record.variables,
            variable_values=record.values,
            endpoint=endpoint,
        )
        demos = await self.demos.choose(prompt, variant, values) if variant.demos else []
        if variant.demos is not None:
            call.demos = [d.id for d in demos]
        try:
            with self.telemetry.span("promptlab.render", {"promptlab.variant": variant.name}):
                messages = self.catalog.render(prompt, variant, values, demos)
        except RenderFailed as err:
            raise self._unrendered(call, err, can_fall_back) from None
        messages = routed_messages(messages, *kept, prompt.app_system)
        call.messages = messages
        upstream_body = routed_body(body, variant.params, messages)
        return await self._send(request, call, upstream_body, can_fall_back=can_fall_back)

    def _unrendered(self, call: Call, err: RenderFailed, can_fall_back: bool) -> Exception:
        """Record a call whose variant cannot render its values; return what to raise."""
        log.warning(
            "variant %s of prompt %s (version %s) cannot render a call's values: %s",
            call.variant, call.prompt_id, call.version,
            self.providers.redactor.redact(err.detail)[:500],
        )  # fmt: skip
        outcome = Outcome.failed(err.code, err.status)
        if can_fall_back:
            return _Unanswered(call, outcome)
        self.recorder.finish(call, outcome)
        err.headers = call.headers()
        return err

    def _warn_fallback(self, call: Call, err: ProviderError) -> None:
        """Say once, per variant version and cause, that a variant fails over to the champion.

        The client gets the champion's answer, so without this line a variant whose model
        does not exist would lose every call in silence. Bounded: a cause seen again (or
        past :data:`WARNED_MAX` causes) is not logged again.
        """
        code = err.upstream_code or err.kind
        key = (call.prompt_id, call.variant, call.version, code)
        if key in self._warned or len(self._warned) >= WARNED_MAX:
            return
        self._warned.add(key)
        upstream = f"upstream {err.upstream_status} {code}" if err.upstream_status else code
        log.warning(
            "variant %s of prompt %s (model %s) failed (%s: %s); the champion answers its "
            "calls instead until it is fixed (logged once)",
            call.variant, call.prompt_id, call.model, upstream,
            self.providers.redactor.redact(err.message)[:300],
        )  # fmt: skip

    # ------------------------------------------------------------------ upstream

    def _failed(self, call: Call, err: ProviderError, can_fall_back: bool) -> Exception:
        """Record a failed execution and return what to raise (unless the caller falls back)."""
        mapped = from_provider(err)
        if err.kind == "not_configured" and call.prompt_id is not None:
            # A variant's model is the config's fault, not the client's.
            mapped.status, mapped.type = 502, "upstream_error"
        outcome = Outcome.failed(err.kind, mapped.status, err.attempts)
        if can_fall_back:
            self._warn_fallback(call, err)
            return _Unanswered(call, outcome)
        self.recorder.finish(call, outcome)
        mapped.headers = call.headers()
        return mapped

    async def _send(
        self,
        request: web.Request,
        call: Call,
        body: dict[str, Any],
        *,
        strict: bool = True,
        can_fall_back: bool = False,
    ) -> web.StreamResponse:
        if call.stream:
            return await self._send_stream(request, call, body, strict, can_fall_back)
        try:
            with self.telemetry.span(
                "promptlab.upstream",
                {"gen_ai.provider.name": call.provider, "gen_ai.request.model": call.model},
            ):
                answer = await self.providers.complete(call.model, body, strict=strict)
        except ProviderError as err:
            raise self._failed(call, err, can_fall_back) from None
        except asyncio.CancelledError:
            self.recorder.finish(call, Outcome.cancelled())
            raise
        data = answer.data
        payload = with_execution_id(data, answer.raw, call.execution_id)
        output = None
        if self.server.capture_content or call.capture:
            choices = data.get("choices") or [{}]
            first = choices[0] if isinstance(choices, list) and choices else {}
            message = first.get("message") if isinstance(first, dict) else None
            output = str(message.get("content") or "") if isinstance(message, dict) else ""
        self.recorder.finish(
            call,
            Outcome(
                model=answer.model if answer.model != call.model else None,
                attempts=answer.attempts,
                usage=data.get("usage"),
                cost_usd=answer.cost_usd,
                output=output,
            ),
        )
        return web.Response(body=payload, content_type="application/json", headers=call.headers())

    async def _send_stream(
        self,
        request: web.Request,
        call: Call,
        body: dict[str, Any],
        strict: bool,
        can_fall_back: bool,
    ) -> web.StreamResponse:
        body, client_wants_usage = with_stream_usage(body)
        try:
            with self.telemetry.span(
                "promptlab.upstream",
                {"gen_ai.provider.name": call.provider, "gen_ai.request.model": call.model},
            ):
                stream = await self.providers.stream(call.model, body, strict=strict)
        except ProviderError as err:
            raise self._failed(call, err, can_fall_back) from None
        except asyncio.CancelledError:
            self.recorder.finish(call, Outcome.cancelled())
            raise
        try:
            response, outcome = await relay(
                request,
                stream,
                execution_id=call.execution_id,
                headers=call.headers(),
                client_wants_usage=client_wants_usage,
                capture=self.server.capture_content or call.capture,
                started=call.started,
                redactor=self.providers.redactor,
            )
        except asyncio.CancelledError:
            self.recorder.finish(call, Outcome.cancelled())
            raise
        if outcome.model == call.model:
            outcome.model = None
        self.recorder.finish(call, outcome)
        return response
