"""Calling models: provider settings, the ``provider/model`` registry, the OpenAI-compatible
client on aiohttp, SSE, retries, the lazy litellm adapter and the labelled simulated
provider. Imports no other package of ours.

    from providers import Providers, ProviderSettings

    async with Providers({"simulated": ProviderSettings(kind="simulated")}) as p:
        answer = await p.complete("simulated/alpha", {"messages": [...]})
"""

from __future__ import annotations

from providers.core import Completion, CostFn, Providers, Stream
from providers.errors import (
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
    TLSFailed,
    UpstreamFailed,
    UpstreamRejected,
)
from providers.redact import Redactor
from providers.registry import Target
from providers.settings import ProviderSettings, default_providers, merge_providers

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
    "Stream",
    "TLSFailed",
    "Target",
    "UpstreamFailed",
    "UpstreamRejected",
    "default_providers",
    "merge_providers",
]
