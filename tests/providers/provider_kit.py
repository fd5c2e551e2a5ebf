"""What the providers tests share: a test key, provider settings with fast retries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from providers import Providers, ProviderSettings

KEY = "sk-test-PROVIDERKEY-0123456789"
KEY_ENV = "PROMPTLAB_TEST_PROVIDER_KEY"

MakeProviders = Callable[..., Awaitable[Providers]]
"""``await make_providers(name=ProviderSettings, ...)``"""


def settings(api_base: str, **overrides: Any) -> ProviderSettings:
    """A provider on ``api_base`` with fast retries (for tests)."""
    return ProviderSettings(
        **{
            "kind": "openai",
            "api_base": api_base,
            "api_key_env": KEY_ENV,
            "max_retries": 2,
            "retry_backoff_s": 0.01,
            "retry_backoff_max_s": 0.02,
            "timeout_s": 5.0,
            **overrides,
        }
    )


BODY = {"messages": [{"role": "user", "content": "hi"}]}
