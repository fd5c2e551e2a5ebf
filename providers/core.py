"""The facade: :class:`Providers` calls a model by its ``provider/model`` name.

``complete`` and ``stream`` try the model, then its fallbacks (the call's own list, else
the provider's ``fallbacks``) when a failure allows another model to take over (5xx,
timeout, connection failure; never a 4xx), and only before anything reached the caller.
What answered and every attempt are in the result (or, on failure, on the error).

Why one module of this size: ``complete``, ``stream``, ``post`` and ``embed`` share one
request path (the chain of fallbacks, deadlines, attempts); checking answers lives beside.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp

from promptlab.providers import codec, litellm_adapter, simulated, sse
from promptlab.providers.body import iter_decoded, read_body
from promptlab.providers.client import HttpClient
from promptlab.providers.embeddings import embedding_rows
from promptlab.providers.errors import Attempt, BadResponse, Misconfigured, ProviderError
from promptlab.providers.redact import Redactor
from promptlab.providers.registry import Registry, Target
from promptlab.providers.safety import safe_body
from promptlab.providers.settings import ProviderSettings

JsonDict = dict[str, Any]
CostFn = Callable[[str, int, int], float | None]
"""``(provider/model, prompt tokens, completion tokens) -> USD`` (None: unknown)."""


def usage_tokens(usage: Any) -> tuple[int, int]:
    """``(prompt tokens, completion tokens)`` of an answer's ``usage`` (0 for what is
    missing or not a number: an upstream's usage is data, not a promise)."""
    if not isinstance(usage, dict):
        return 0, 0
    try:
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    except (TypeError, ValueError):
        return 0, 0


@dataclass(slots=True)
class Completion:
    """A model's answer."""

    data: JsonDict
    """The response body (for chat: an OpenAI ``chat.completion``)."""
    model: str
    """The ``provider/model`` that answered (a fallback, when the primary failed)."""
    latency_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    """Every model tried, in order, with its error kind (None for the one that answered)."""
    raw: bytes | None = None
    """The upstream's bytes when it was an HTTP upstream (relay them as they are)."""


class Stream:
    """A streamed completion: an async iterator of SSE ``data`` payloads, ``[DONE]`` last.

    Failures mid-stream raise :class:`ProviderError`. ``aclose()`` stops early and cancels
    the upstream call (its connection is closed).
    """

    def __init__(
        self,
        payloads: AsyncIterator[bytes],
        *,
        model: str,
        attempts: list[Attempt],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._payloads = payloads
        self.model = model
        """The ``provider/model`` that answers."""
        self.attempts = attempts
        self._on_close = on_close

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._payloads

    async def aclose(self) -> None:
        aclose = getattr(self._payloads, "aclose", None)
        if aclose is not None:
            await aclose()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None


class Providers:
    """The configured providers; start it (or ``async with``) before calling."""

    def __init__(
        self,
        settings: Mapping[str, ProviderSettings],
        *,
        default_provider: str | None = None,
        redactor: Redactor | None = None,
        environ: Mapping[str, str] | None = None,
        cost: CostFn | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.registry = Registry(settings, default_provider=default_provider)
        self.redactor = redactor or Redactor()
        self._keys: dict[str, str | None] = {}
        for name, cfg in self.registry.providers.items():
            key = env.get(cfg.api_key_env) if cfg.api_key_env else None
            self._keys[name] = key or None
            self.redactor.add(key)
        self._http = HttpClient(self.registry.providers, self._keys, self.redactor)
        self._cost = cost

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def __aenter__(self) -> Providers:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ names

    def names(self) -> list[str]:
        return self.registry.names()

    def resolve(self, model: str, *, strict: bool = True) -> Target:
        """``provider/model`` -> Target (:class:`ProviderNotConfigured` when unknown)."""
        return self.registry.resolve(model, strict=strict)

    def settings(self, provider: str) -> ProviderSettings:
        """The settings of a configured provider (KeyError when there is none)."""
        return self.registry.providers[provider]

    def describe(self) -> list[str]:
        """One line per provider: name, kind, base URL, key present (never the key)."""
        lines = []
        for name, cfg in self.registry.providers.items():
            key = "yes" if self._keys.get(name) else ("no" if cfg.api_key_env else "not needed")
            lines.append(f"{name}: kind={cfg.kind} base={cfg.api_base or '-'} key={key}")
        return lines

    def key_present(self, provider: str) -> bool:
        return bool(self._keys.get(provider))

    # ------------------------------------------------------------------ calls

    def _chain(self, model: str, fallbacks: Sequence[str] | None, strict: bool) -> list[Target]:
        first = self.resolve(model, strict=strict)
        names = list(fallbacks) if fallbacks is not None else list(first.settings.fallbacks)
        return [first, *(self.resolve(n) for n in names if n != first.qualified)]

    def _deadline(self, target: Target, timeout_s: float | None, overall: float) -> float:
        own = asyncio.get_running_loop().time() + (
            timeout_s if timeout_s is not None else target.settings.timeout_s
        )
        return min(own, overall)

    async def complete(
        self,
        model: str,
        body: JsonDict,
        *,
        timeout_s: float | None = None,
        fallbacks: Sequence[str] | None = None,
        strict: bool = True,
    ) -> Completion:
        """One chat completion (non-streamed), with fallbacks."""
        body = safe_body(body)
        chain = self._chain(model, fallbacks, strict)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        overall = loop.time() + (
            timeout_s if timeout_s is not None else chain[0].settings.timeout_s
        )
        attempts: list[Attempt] = []
        for i, target in enumerate(chain):
            try:
                data, raw, cost = await self._complete_one(
                    target, body, self._deadline(target, timeout_s, overall)
                )
            except ProviderError as err:
                err.model = target.qualified
                attempts.append((target.qualified, err.kind))
                if not err.fallback_ok or i == len(chain) - 1 or loop.time() >= overall:
                    raise err.with_attempts(attempts) from None
                continue
            attempts.append((target.qualified, None))
            prompt_tokens, completion_tokens = usage_tokens(data.get("usage"))
            if cost is None and self._cost is not None:
                cost = self._cost(target.qualified, prompt_tokens, completion_tokens)
            return Completion(
                data=data,
                model=target.qualified,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_usd=cost,
                attempts=attempts,
                raw=raw,
            )
        raise AssertionError("unreachable: the chain is never empty")

    async def _complete_one(
        self, target: Target, body: JsonDict, deadline: float
    ) -> tuple[JsonDict, bytes | None, float | None]:
        cfg = target.settings
        if cfg.kind == "simulated":
            return simulated.complete(target.model, body), None, None
        if cfg.kind != "openai":
            remaining = deadline - asyncio.get_running_loop().time()
            args = litellm_adapter.arguments(
                cfg, target.model, body, self._keys.get(target.provider), remaining
            )
            data, cost = await litellm_adapter.complete(args, target.qualified, self.redactor)
            return data, None, cost
        data, raw = await self._request(target, "/chat/completions", body, deadline)
        return data, raw, None

    async def post(
        self,
        model: str,
        path: str,
        body: JsonDict,
        *,
        timeout_s: float | None = None,
        strict: bool = True,
    ) -> Completion:
        """Any other OpenAI endpoint (``/embeddings``, ``/completions``, ``/responses``),
        non-streamed, passed through to the provider ``model`` names (no fallbacks).

        Tokens are read from ``usage`` in either of OpenAI's shapes (``prompt_tokens``/
        ``completion_tokens`` or ``input_tokens``/``output_tokens``).
        """
        target = self.resolve(model, strict=strict)
        body = safe_body(body)
        started = time.perf_counter()
        timeout = timeout_s if timeout_s is not None else target.settings.timeout_s
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            data, raw = await self._request(target, path, body, deadline)
        except ProviderError as err:
            err.model = target.qualified
            raise err.with_attempts([(target.qualified, err.kind)]) from None
        usage = data.get("usage")
        prompt_tokens, completion_tokens = usage_tokens(usage)
        if isinstance(usage, dict) and not (prompt_tokens or completion_tokens):
            prompt_tokens, completion_tokens = usage_tokens(
                {
                    "prompt_tokens": usage.get("input_tokens"),
                    "completion_tokens": usage.get("output_tokens"),
                }
            )
        cost = None
        if self._cost is not None and (prompt_tokens or completion_tokens):
            cost = self._cost(target.qualified, prompt_tokens, completion_tokens)
        return Completion(
            data=data,
            model=target.qualified,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            attempts=[(target.qualified, None)],
            raw=raw,
        )

    async def embed(
        self, model: str, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> list[list[float]]:
        """The embedding of each of ``texts``, in order, through ``model``'s
        ``/embeddings`` (OpenAI-compatible providers only; one request, no fallbacks).

        Every way the answer can be unusable (missing rows, rows of different lengths,
        numbers that are not finite) is a :class:`BadResponse`, so a caller handles one
        error tree: :class:`ProviderError`.
        """
        if not texts:
            return []
        answer = await self.post(model, "/embeddings", {"input": list(texts)}, timeout_s=timeout_s)
        return embedding_rows(answer.data, len(texts), answer.model)

    async def _request(
        self, target: Target, path: str, body: JsonDict, deadline: float
    ) -> tuple[JsonDict, bytes]:
        """POST ``body`` (with the target's model) to an OpenAI-compatible provider's
        ``path``; the parsed JSON object and its bytes. ``deadline`` is on the loop's clock."""
        if target.settings.kind != "openai":
            raise Misconfigured(
                f"{target.qualified}: {path} is served only by OpenAI-compatible providers",
                status=400,
                kind="not_supported",
            )
        if not target.settings.api_base:
            raise Misconfigured(f"provider {target.provider!r} has no api_base")
        what = target.qualified
        payload = codec.dumps({**body, "model": target.model})
        resp = await self._http.post(target.provider, target.url(path), payload, deadline, what)
        try:
            raw = await read_body(resp, target.settings.max_response_bytes, what)
        except BaseException:
            resp.close()  # a body read only in part: the connection cannot be reused
            raise
        resp.release()
        try:
            data = codec.loads(raw)
        except ValueError:
            raise BadResponse(f"{what} returned a body that is not JSON") from None
        if not isinstance(data, dict):
            raise BadResponse(f"{what} returned JSON that is not an object")
        return data, raw

    async def stream(
        self,
        model: str,
        body: JsonDict,
        *,
        timeout_s: float | None = None,
        fallbacks: Sequence[str] | None = None,
        strict: bool = True,
    ) -> Stream:
        """Open a streamed chat completion. Failures before the stream opens raise here
        (after the fallbacks); later ones raise while iterating."""
        body = safe_body(body)
        chain = self._chain(model, fallbacks, strict)
        loop = asyncio.get_running_loop()
        overall = loop.time() + (
            timeout_s if timeout_s is not None else chain[0].settings.timeout_s
        )
        attempts: list[Attempt] = []
        for i, target in enumerate(chain):
            try:
                payloads, on_close = await self._stream_one(
                    target, {**body, "stream": True}, self._deadline(target, timeout_s, overall)
                )
            except ProviderError as err:
                err.model = target.qualified
                attempts.append((target.qualified, err.kind))
                if not err.fallback_ok or i == len(chain) - 1 or loop.time() >= overall:
                    raise err.with_attempts(attempts) from None
                continue
            attempts.append((target.qualified, None))
            return Stream(payloads, model=target.qualified, attempts=attempts, on_close=on_close)
        raise AssertionError("unreachable: the chain is never empty")

    async def _stream_one(
        self, target: Target, body: JsonDict, deadline: float
    ) -> tuple[AsyncIterator[bytes], Callable[[], None] | None]:
        cfg = target.settings
        what = target.qualified
        if cfg.kind == "simulated":
            return simulated.stream(target.model, body), None
        if cfg.kind != "openai":
            remaining = deadline - asyncio.get_running_loop().time()
            args = litellm_adapter.arguments(
                cfg, target.model, body, self._keys.get(target.provider), remaining
            )
            return await litellm_adapter.stream(args, what, self.redactor), None
        if not cfg.api_base:
            raise Misconfigured(f"provider {target.provider!r} has no api_base")
        payload = codec.dumps({**body, "model": target.model})
        resp = await self._http.post(target.provider, target.url(), payload, deadline, what)
        chunks = iter_decoded(resp, cfg.max_response_bytes, what)
        # resp.close() after a finished stream is a no-op (the connection went back to
        # the pool); before, it closes the connection, which cancels the upstream call.
        return _guarded(sse.payloads(chunks, what, self.redactor), resp), resp.close


async def _guarded(
    payloads: AsyncIterator[bytes], resp: aiohttp.ClientResponse
) -> AsyncIterator[bytes]:
    """The payloads; the response is closed when the stream fails or is abandoned."""
    done = False
    try:
        async for payload in payloads:
            if payload == sse.DONE:
                done = True
            yield payload
    finally:
        if done:
            resp.release()
        else:
            resp.close()
