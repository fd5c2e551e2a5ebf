"""Upstreams: where a call goes once the request is final.

A model is named ``provider/model``; the provider's settings say how to reach it:

* ``kind = "openai"``: any OpenAI-compatible API, reached through the app's one pool of
  keep-alive connections (:mod:`sidecar.http1`, a small HTTP/1.1 client made for this
  hot path), the body passed through as bytes;
* ``kind = "simulated"``: :mod:`sidecar.simulated`, no network;
* any other kind: litellm, imported only inside the call that needs it.

Timeouts: ``connect_timeout_s`` to open a connection, ``first_token_timeout_s`` for
any wait on the socket (response headers, the first and every later chunk) and
``total_timeout_s`` for the whole call, retries included. Retries happen on 429, 5xx
and refused connections, with full-jitter exponential backoff; a ``Retry-After`` the
upstream sends is honoured, and ends the retries when it would overrun the deadline.
Read timeouts are not retried: the upstream may be working on (and billing) the call.

The URL always comes from the provider's settings: nothing in a request can change it.
Provider keys are read once from the environment, sent only in the Authorization
header, and handed to the app's :class:`~sidecar.errors.Redactor`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar import codec, http1, simulated
from sidecar.config import ProviderSettings
from sidecar.errors import BadRequest, Redactor, UpstreamError, UpstreamTimeout

RETRYABLE = frozenset({429, 500, 502, 503, 504, 529})

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Target:
    """One provider and model, resolved from a ``provider/model`` name."""

    provider: str
    settings: ProviderSettings
    model: str
    """The model name the provider knows (without the ``provider/`` prefix)."""
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    origin: http1.Origin | None = None
    """Where ``url`` is, for the HTTP client (None: no ``api_base`` configured)."""
    head: bytes = b""
    """The request line and headers of a call, ready to send (see :func:`http1.request_head`)."""

    @property
    def qualified(self) -> str:
        return f"{self.provider}/{self.model}"


class Stream:
    """The chunks of a streamed completion as SSE ``data`` payloads (``b"[DONE]"`` last).

    ``aclose()`` stops it early and cancels the upstream call.
    """

    def __init__(self, payloads: AsyncIterator[bytes]) -> None:
        self._payloads = payloads

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._payloads

    async def aclose(self) -> None:
        aclose = getattr(self._payloads, "aclose", None)
        if aclose is not None:
            await aclose()


def upstream_message(raw: bytes, status: int) -> str:
    """The upstream's own error message (OpenAI shape or plain text), shortened."""
    try:
        data = codec.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
    except ValueError:
        pass
    text = raw.decode("utf-8", "replace").strip()
    return text[:500] or f"HTTP {status}"


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP-date); None when absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def map_status(status: int, message: str) -> UpstreamError:
    """The error a client sees for an upstream's HTTP failure.

    Client mistakes the upstream reports (400, 404, 422) keep their status so an SDK
    behaves as with the provider; 429 stays 429 so SDKs back off; a rejected provider
    key (401/403) and 5xx become 502: the client can do nothing about them.
    """
    if status in (400, 404, 409, 413, 422):
        return UpstreamError(message, kind=f"http_{status}", upstream_status=status, status=status)
    if status == 429:
        return UpstreamError(message, kind="rate_limited", upstream_status=status, status=429)
    if status in (401, 403):
        return UpstreamError(
            f"the upstream rejected the provider credentials: {message}",
            kind="upstream_auth",
            upstream_status=status,
        )
    return UpstreamError(
        f"upstream error {status}: {message}", kind=f"http_{status}", upstream_status=status
    )


class Upstreams:
    """The configured providers and the one pooled HTTP session that reaches them."""

    def __init__(
        self,
        providers: Mapping[str, ProviderSettings],
        *,
        default_provider: str = "openai",
        redactor: Redactor | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._providers = dict(providers)
        self._default = default_provider
        self.redactor = redactor or Redactor()
        self._headers: dict[str, dict[str, str]] = {}
        self._keys: dict[str, str | None] = {}
        self._targets: dict[str, Target] = {}
        for name, cfg in self._providers.items():
            key = env.get(cfg.api_key_env) if cfg.api_key_env else None
            self._keys[name] = key
            self.redactor.add(key)
            headers = {"Content-Type": "application/json", **cfg.extra_headers}
            if key:
                headers["Authorization"] = f"Bearer {key}"
            self._headers[name] = headers
        self._pool: http1.Pool | None = None
        self._rng = random.Random()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the connection pool (inside the running loop)."""
        if self._pool is None:
            limit = max((p.max_connections for p in self._providers.values()), default=512)
            self._pool = http1.Pool(limit=limit)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # ------------------------------------------------------------------ resolving

    def provider_names(self) -> list[str]:
        return list(self._providers)

    def resolve(self, model: str, *, strict: bool = False) -> Target:
        """``provider/model`` -> Target; a model naming no provider goes to the default one,
        unless ``strict`` (variants must name a configured provider).

        Cached per name: the hot path resolves the same few models over and over.
        """
        target = self._targets.get(model)
        if target is None:
            provider, sep, rest = model.partition("/")
            if not (sep and provider in self._providers and rest):
                provider, rest = self._default, model
            cfg = self._providers.get(provider)
            if cfg is None:
                raise BadRequest(
                    f"model {model!r} names no configured provider (providers: {', '.join(self._providers)})",
                    code="model_not_found",
                    param="model",
                )
            url = (cfg.api_base or "").rstrip("/") + "/chat/completions"
            headers = self._headers[provider]
            origin = head = None
            if cfg.kind == "openai" and cfg.api_base:
                try:
                    origin = http1.Origin(url)
                    head = http1.request_head(origin, headers)
                except ValueError as exc:
                    raise UpstreamError(
                        f"provider {provider!r} has a bad api_base: {exc}", kind="misconfigured"
                    ) from None
            target = Target(provider, cfg, rest, url, headers, origin, head or b"")
            if len(self._targets) < 4096:  # unrouted calls could name anything
                self._targets[model] = target
        if strict and target.qualified != model:
            raise BadRequest(
                f"model {model!r} names no configured provider (providers: {', '.join(self._providers)})",
                code="model_not_found",
                param="model",
            )
        return target

    # ------------------------------------------------------------------ calls

    async def complete(self, target: Target, body: JsonDict) -> tuple[JsonDict, bytes | None]:
        """One non-streamed completion: the parsed body (OpenAI response shape) and,
        for HTTP upstreams, the raw bytes (so the caller can relay them without a
        second JSON encoding)."""
        kind = target.settings.kind
        if kind == "simulated":
            return simulated.complete(target.model, body), None
        if kind != "openai":
            return await self._litellm_complete(target, body), None
        resp = await self._post(target, codec.dumps({**body, "model": target.model}))
        try:
            raw = await resp.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"{target.qualified} timed out reading the response", kind="timeout"
            ) from exc
        except http1.HTTPClientError as exc:
            raise UpstreamError(
                f"{target.qualified}: connection lost: {exc.__class__.__name__}",
                kind="connection_lost",
            ) from exc
        finally:
            resp.release()
        try:
            data = codec.loads(raw)
        except ValueError as exc:
            raise UpstreamError(
                f"{target.qualified} returned a body that is not JSON", kind="bad_response"
            ) from exc
        if not isinstance(data, dict):
            raise UpstreamError(
                f"{target.qualified} returned JSON that is not an object", kind="bad_response"
            )
        return data, raw

    async def stream(self, target: Target, body: JsonDict) -> Stream:
        """Open a streamed completion; failures before the first byte raise here."""
        kind = target.settings.kind
        if kind == "simulated":
            return Stream(simulated.stream(target.model, body))
        if kind != "openai":
            return await self._litellm_stream(target, body)
        resp = await self._post(target, codec.dumps({**body, "model": target.model}))
        return Stream(_sse_payloads(resp, target))

    async def _post(self, target: Target, payload: bytes) -> http1.Response:
        """POST with retries; returns a 200 response (caller reads and releases it)."""
        if self._pool is None:
            raise RuntimeError("Upstreams.start() was not awaited")
        cfg = target.settings
        if target.origin is None:
            raise UpstreamError(
                f"provider {target.provider!r} has no api_base", kind="misconfigured"
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.total_timeout_s
        attempt = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise UpstreamTimeout(
                    f"{target.qualified} did not answer within {cfg.total_timeout_s:g}s",
                    kind="timeout",
                )
            retry_after: float | None = None
            try:
                resp = await self._pool.request(
                    target.origin,
                    target.head,
                    payload,
                    connect_timeout=cfg.connect_timeout_s,
                    read_timeout=cfg.first_token_timeout_s,
                    deadline=deadline,
                )
            except TimeoutError as exc:
                raise UpstreamTimeout(f"{target.qualified} timed out", kind="timeout") from exc
            except http1.ConnectError as exc:
                # Nothing reached the upstream: safe to retry.
                why = (
                    exc.os_error.strerror if exc.os_error is not None else None
                ) or exc.__class__.__name__
                error: UpstreamError = UpstreamError(
                    f"cannot connect to {target.provider}: {why}", kind="connect_error"
                )
            except http1.HTTPClientError as exc:
                raise UpstreamError(
                    f"{target.qualified}: {exc.__class__.__name__}", kind="connection_lost"
                ) from exc
            else:
                if resp.status == 200:
                    return resp
                try:
                    raw = await resp.read()
                except (http1.HTTPClientError, TimeoutError):
                    raw = b""
                finally:
                    resp.release()
                error = map_status(
                    resp.status, self.redactor.redact(upstream_message(raw, resp.status))
                )
                if resp.status not in RETRYABLE:
                    raise error
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
            if attempt >= cfg.max_retries:
                raise error
            backoff = self._rng.uniform(
                0, min(cfg.retry_backoff_max_s, cfg.retry_backoff_s * (2**attempt))
            )
            delay = max(backoff, retry_after or 0.0)
            if loop.time() + delay >= deadline:
                raise error
            attempt += 1
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ litellm

    def _litellm_args(self, target: Target, body: JsonDict) -> JsonDict:
        cfg = target.settings
        model = target.model if cfg.kind == "litellm" else f"{cfg.kind}/{target.model}"
        args = {k: v for k, v in body.items() if k != "model"}
        args.update(model=model, timeout=cfg.total_timeout_s, num_retries=cfg.max_retries)
        if cfg.api_base:
            args["api_base"] = cfg.api_base
        key = self._keys.get(target.provider)
        if key:
            args["api_key"] = key
        if cfg.extra_headers:
            args["extra_headers"] = dict(cfg.extra_headers)
        return args

    async def _litellm_complete(self, target: Target, body: JsonDict) -> JsonDict:
        litellm = _import_litellm()
        try:
            response = await litellm.acompletion(**self._litellm_args(target, body))
        except Exception as exc:  # litellm raises its own tree; translate at the boundary
            raise self._litellm_error(target, exc) from None
        return dict(response.model_dump(exclude_none=True))

    async def _litellm_stream(self, target: Target, body: JsonDict) -> Stream:
        litellm = _import_litellm()
        try:
            chunks = await litellm.acompletion(**self._litellm_args(target, body))
        except Exception as exc:
            raise self._litellm_error(target, exc) from None

        async def payloads() -> AsyncIterator[bytes]:
            try:
                async for chunk in chunks:
                    yield json.dumps(
                        chunk.model_dump(exclude_none=True), separators=(",", ":")
                    ).encode()
            except Exception as exc:
                raise self._litellm_error(target, exc) from None
            yield b"[DONE]"

        return Stream(payloads())

    def _litellm_error(self, target: Target, exc: Exception) -> UpstreamError:
        message = self.redactor.redact(str(exc))[:500]
        if isinstance(exc, TimeoutError) or "Timeout" in exc.__class__.__name__:
            return UpstreamTimeout(f"{target.qualified} timed out: {message}", kind="timeout")
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            return map_status(status, message)
        return UpstreamError(f"{target.qualified}: {message}", kind=exc.__class__.__name__)


def _import_litellm() -> Any:
    """litellm costs a second and much memory to import: only calls that need it pay."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


async def _lines(resp: http1.Response) -> AsyncIterator[bytes]:
    """The body's lines, each with its line ending (the last one may have none)."""
    pending = b""
    async for chunk in resp.iter_chunks():
        if pending:
            chunk = pending + chunk
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                break
            yield chunk[start : nl + 1]
            start = nl + 1
        pending = chunk[start:]
    if pending:
        yield pending


async def _sse_payloads(resp: http1.Response, target: Target) -> AsyncIterator[bytes]:
    """The ``data`` payloads of an SSE response, per the SSE spec (multi-line data joined)."""
    finished = False
    data: list[bytes] = []
    try:
        async for line in _lines(resp):
            if line == b"\n" or line == b"\r\n":
                if data:
                    payload = b"\n".join(data)
                    data.clear()
                    yield payload
                    if payload == b"[DONE]":
                        finished = True
                        return
            elif line.startswith(b"data:"):
                value = line[5:]
                if value[:1] == b" ":
                    value = value[1:]
                data.append(value.rstrip(b"\r\n"))
        if data:
            payload = b"\n".join(data)
            yield payload
            finished = payload == b"[DONE]"
        # A stream that ends without [DONE] is still a complete stream for us.
        finished = True
    except TimeoutError as exc:
        raise UpstreamTimeout(f"{target.qualified} stalled mid-stream", kind="timeout") from exc
    except http1.HTTPClientError as exc:
        raise UpstreamError(
            f"{target.qualified}: stream broken: {exc.__class__.__name__}", kind="connection_lost"
        ) from exc
    finally:
        if finished:
            resp.release()
        else:
            # Stopped early (client went away): closing the connection cancels the call.
            resp.close()
