"""Providers that need translation (``kind`` anthropic, gemini, azure, ...) through litellm.

litellm costs about a second and much memory to import: it is imported inside the first
call that needs it, never by ``import providers``. ``LITELLM_LOCAL_MODEL_COST_MAP`` is
set so that the import does not reach the network. Its exceptions are translated into
ours at this boundary, their messages redacted.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from promptlab.providers.errors import (
    ConnectFailed,
    ProviderError,
    ProviderTimeout,
    UpstreamFailed,
)
from promptlab.providers.redact import Redactor
from promptlab.providers.settings import ProviderSettings

JsonDict = dict[str, Any]


def import_litellm() -> Any:
    """The litellm module, imported on first use."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    # No "Give Feedback / Get Help" banners on stdout for every failed call.
    litellm.suppress_debug_info = True
    return litellm


def arguments(
    cfg: ProviderSettings, model: str, body: JsonDict, key: str | None, timeout_s: float
) -> JsonDict:
    """``litellm.acompletion`` keyword arguments for one call."""
    name = model if cfg.kind == "litellm" else f"{cfg.kind}/{model}"
    args = {k: v for k, v in body.items() if k != "model"}
    # Retries and deadlines are ours: litellm makes one attempt.
    args.update(model=name, timeout=timeout_s, num_retries=0, max_retries=0)
    if cfg.api_base:
        args["api_base"] = cfg.api_base
    if key:
        args["api_key"] = key
    if cfg.headers:
        args["extra_headers"] = dict(cfg.headers)
    return args


def translate(exc: Exception, what: str, redactor: Redactor) -> ProviderError:
    """Our error for one of litellm's."""
    from promptlab.providers.client import status_error

    message = redactor.redact(str(exc))[:500]
    name = exc.__class__.__name__
    if isinstance(exc, TimeoutError) or "Timeout" in name:
        return ProviderTimeout(f"{what} timed out: {message}")
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status != 500:
        return status_error(status, message, None)
    if "APIConnectionError" in name or "ServiceUnavailable" in name:
        return ConnectFailed(f"{what}: {message}")
    return UpstreamFailed(f"{what}: {message}", kind=f"litellm_{name}")


def cost_of(response: Any) -> float | None:
    """The cost litellm computed for a response, when it did."""
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, dict):
        cost = hidden.get("response_cost")
        if isinstance(cost, int | float):
            return float(cost)
    return None


async def complete(args: JsonDict, what: str, redactor: Redactor) -> tuple[JsonDict, float | None]:
    """One completion: the OpenAI-shaped body and litellm's cost."""
    litellm = import_litellm()
    try:
        response = await litellm.acompletion(**args)
    except Exception as exc:  # litellm raises its own tree; translate at the boundary
        raise translate(exc, what, redactor) from None
    data: JsonDict = dict(response.model_dump(exclude_none=True))
    cost = cost_of(response)
    if cost is None:
        try:
            cost = float(litellm.completion_cost(completion_response=response))
        except Exception:  # unknown model in the cost table
            cost = None
    return data, cost


async def stream(args: JsonDict, what: str, redactor: Redactor) -> AsyncIterator[bytes]:
    """SSE payloads (``[DONE]`` last) of a streamed completion."""
    litellm = import_litellm()
    try:
        chunks = await litellm.acompletion(**{**args, "stream": True})
    except Exception as exc:
        raise translate(exc, what, redactor) from None

    async def payloads() -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield json.dumps(
                    chunk.model_dump(exclude_none=True), separators=(",", ":")
                ).encode()
        except Exception as exc:
            raise translate(exc, what, redactor) from None
        yield b"[DONE]"

    return payloads()
