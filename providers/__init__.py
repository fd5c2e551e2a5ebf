"""Calling models: provider settings, the ``provider/model`` registry, the OpenAI-compatible
client on aiohttp, SSE, retries, the lazy litellm adapter and the labelled simulated
provider. Imports no other package of ours.

    from promptlab.providers import Providers, ProviderSettings

    async with Providers({"simulated": ProviderSettings(kind="simulated")}) as p:
        answer = await p.complete("simulated/alpha", {"messages": [...]})

``import providers`` is light: settings, errors and the registry load at once; the client
(aiohttp) when :class:`Providers`, :class:`Completion` or :class:`Stream` is first used,
and litellm only when a provider that needs it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promptlab.providers.errors import (
    Attempt,
    AuthFailed,
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    Misconfigured,
    ProviderError,
    ProviderNotConfigured,
    ProviderTimeout,
    RateLimited,
    ResponseTooLarge,
    RouteNotAllowed,
    TLSFailed,
    UpstreamFailed,
    UpstreamRejected,
)
from promptlab.providers.redact import Redactor
from promptlab.providers.registry import Target
from promptlab.providers.settings import ProviderSettings, default_providers, merge_providers

if TYPE_CHECKING:
    from promptlab.providers.core import Completion, CostFn, Providers, Stream

_LAZY = frozenset({"Completion", "CostFn", "Providers", "Stream"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from promptlab.providers import core

        return getattr(core, name)
    raise AttributeError(f"module 'providers' has no attribute {name!r}")


__all__ = [
    "Attempt",
    "AuthFailed",
    "BadResponse",
    "Completion",
    "ConnectFailed",
    "ConnectionLost",
    "CostFn",
    "Misconfigured",
    "ProviderError",
    "ProviderNotConfigured",
    "ProviderSettings",
    "ProviderTimeout",
    "Providers",
    "RateLimited",
    "Redactor",
    "ResponseTooLarge",
    "RouteNotAllowed",
    "Stream",
    "TLSFailed",
    "Target",
    "UpstreamFailed",
    "UpstreamRejected",
    "default_providers",
    "merge_providers",
]
