"""``[providers.<name>]``: how to reach one upstream; a model is named ``<name>/<model>``."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

Kind = Literal[
    "openai",
    "simulated",
    "litellm",
    "anthropic",
    "gemini",
    "azure",
    "bedrock",
    "cohere",
    "mistral",
]

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class ProviderSettings(BaseModel):
    """One upstream. Every field has a default, so ``[providers.x]`` names only what differs."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True
    )

    kind: Kind = "openai"
    """``openai``: any OpenAI-compatible API, passed through as is. ``simulated``: the
    labelled offline provider for demos and tests. Other kinds go through litellm."""
    api_base: str | None = None
    """Base URL of the upstream API (for ``openai``, ending in ``/v1``)."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the key (never the key itself)."""
    headers: dict[str, str] = Field(
        default_factory=dict, validation_alias=AliasChoices("headers", "extra_headers")
    )
    """Headers sent with every upstream call (no secrets here: use api_key_env).
    ``extra_headers`` is accepted as an older name."""
    ca_bundle: str | None = None
    """PEM file of the CAs that sign the upstream's certificate (default: the system's)."""
    verify: bool = True
    """Verify the upstream's TLS certificate. Turn off only for a local test server."""
    connect_timeout_s: float = Field(default=5.0, gt=0)
    """Opening a connection (TCP and TLS)."""
    first_token_timeout_s: float = Field(default=60.0, gt=0)
    """Longest wait on the socket: for the response headers, the first and every later chunk."""
    timeout_s: float = Field(
        default=300.0, gt=0, validation_alias=AliasChoices("timeout_s", "total_timeout_s")
    )
    """The whole call's deadline, pool wait and retries included (``total_timeout_s``
    is accepted as an older name). A caller may pass a shorter one per call."""
    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries on 429, 5xx and refused connections, with jittered backoff that honours
    Retry-After. Never after the request may have reached the upstream (no POST re-send)."""
    retry_backoff_s: float = Field(default=0.25, ge=0)
    """First retry waits up to this long (full jitter), doubling each retry."""
    retry_backoff_max_s: float = Field(default=8.0, ge=0)
    """Longest wait between two retries (a longer Retry-After ends the retries)."""
    max_connections: int = Field(default=512, ge=1)
    """Pooled keep-alive connections to this provider (its own pool: one slow provider
    cannot take the connections of another)."""
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1024)
    """Largest response body accepted, after decompression (over it: 502 ``too_large``)."""
    fallbacks: list[str] = Field(default_factory=list)
    """Models (``provider/model``) tried in order when a call to this provider fails
    before anything reached the client (5xx, timeout, connect error; never a 4xx)."""
    models: list[str] = Field(default_factory=list)
    """Models listed by ``GET /v1/models`` for this provider (optional)."""
    allowed_models: list[str] = Field(default_factory=list)
    """``kind = "litellm"`` without ``api_base``: the models (shell patterns such as
    ``"anthropic/*"`` or ``"openai/gpt-4o*"``, matched against the name after
    ``<provider>/``) this provider may call. litellm picks a route's host from the model
    name, so without it a variant's ``lite/ollama/llama3`` would send this provider's key
    to litellm's default host for ``ollama``; every other model is refused. With an
    ``api_base`` every call goes to that host and this list is not needed."""

    def route_problem(self, model: str) -> str | None:
        """Why ``model`` (the name after ``<provider>/``) may not be called through this
        provider, or None when it may (see :attr:`allowed_models`)."""
        if self.kind != "litellm" or self.api_base:
            return None
        if any(fnmatch.fnmatchcase(model, pattern) for pattern in self.allowed_models):
            return None
        allowed = ", ".join(self.allowed_models) or "none"
        return (
            f"model {model!r} is not among this litellm provider's allowed_models "
            f"({allowed}): without api_base the model name would choose the host that "
            "receives the provider's key; add it to allowed_models or set api_base"
        )

    @property
    def total_timeout_s(self) -> float:
        """The older name of :attr:`timeout_s`."""
        return self.timeout_s

    @property
    def extra_headers(self) -> dict[str, str]:
        """The older name of :attr:`headers`."""
        return self.headers


def default_providers() -> dict[str, ProviderSettings]:
    """Providers known without any config: OpenAI and the simulated one."""
    return {
        "openai": ProviderSettings(
            kind="openai", api_base="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY"
        ),
        "simulated": ProviderSettings(kind="simulated"),
    }


def merge_providers(configured: Mapping[str, Any] | None) -> dict[str, ProviderSettings]:
    """The built-in providers with ``[providers.X]`` tables merged over them.

    A table for a built-in name changes only the keys it names (``[providers.openai]
    api_base = ...`` keeps ``api_key_env``); other names are new providers.
    """
    merged = default_providers()
    for name, value in (configured or {}).items():
        if isinstance(value, ProviderSettings):
            fields = value.model_dump(exclude_unset=True)
        else:
            fields = dict(value)
        base = merged.get(name)
        if base is None:
            merged[name] = ProviderSettings.model_validate(fields)
        else:
            merged[name] = ProviderSettings.model_validate(
                {**base.model_dump(exclude_unset=True), **fields}
            )
    return merged
