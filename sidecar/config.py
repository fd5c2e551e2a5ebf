"""Settings of the sidecar: the HTTP server, providers and telemetry."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ServerSettings(BaseModel):
    """``[server]``: the OpenAI-compatible HTTP front door."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    """Bind address. Loopback by default: expose it deliberately."""
    port: int = Field(default=8787, ge=0, le=65535)
    """TCP port (0 picks a free one)."""
    api_keys: list[SecretStr] = Field(default_factory=list)
    """Client keys accepted on ``/v1`` as ``Authorization: Bearer``; empty = no auth."""
    admin_keys: list[SecretStr] = Field(default_factory=list)
    """Keys for ``/admin``; empty = admin API only from loopback clients."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body accepted (413 beyond)."""
    header_timeout_s: float = Field(default=10.0, ge=0)
    """A request's headers must arrive within this many seconds of its first byte
    (408 and the connection closed otherwise: a guard against slowloris). 0 = no limit."""
    drain_timeout_s: float = Field(default=10.0, ge=0)
    """On shutdown, how long in-flight calls may take to finish."""
    capture_content: bool = False
    """Put request messages and model output into ExecutionCompleted events."""
    capture_max_chars: int = Field(default=2000, ge=0)
    """Truncate captured content to this many characters per message."""
    default_provider: str = "openai"
    """Provider of an unrouted call whose ``model`` names no configured provider
    (``gpt-4o-mini`` rather than ``openai/gpt-4o-mini``)."""
    workers: int = Field(default=1, ge=1, le=64)
    """Processes serving one port with SO_REUSEPORT (``promptlab serve --workers``)."""


class ProviderSettings(BaseModel):
    """``[providers.<name>]``: an upstream; a model is named ``<name>/<model>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal[
        "openai",
        "simulated",
        "litellm",
        "anthropic",
        "gemini",
        "azure",
        "bedrock",
        "cohere",
        "mistral",
    ] = "openai"
    """``openai``: any OpenAI-compatible API, passed through as is. ``simulated``: the
    labelled offline provider for demos and tests. Other kinds go through litellm."""
    api_base: str | None = None
    """Base URL of the upstream API (for ``openai``, ending in ``/v1``)."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the key (never the key itself)."""
    connect_timeout_s: float = Field(default=5.0, gt=0)
    first_token_timeout_s: float = Field(default=60.0, gt=0)
    total_timeout_s: float = Field(default=300.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries on 429 and 5xx, with jittered backoff that honours Retry-After."""
    retry_backoff_s: float = Field(default=0.25, ge=0)
    """First retry waits up to this long (full jitter), doubling each retry."""
    retry_backoff_max_s: float = Field(default=8.0, ge=0)
    """Longest wait between two retries (a longer Retry-After ends the retries)."""
    max_connections: int = Field(default=512, ge=1)
    """Pooled keep-alive connections to this provider."""
    extra_headers: dict[str, str] = Field(default_factory=dict)
    """Headers sent with every upstream call (no secrets here: use api_key_env)."""


def default_providers() -> dict[str, ProviderSettings]:
    """Providers known without any config: OpenAI and the simulated one."""
    return {
        "openai": ProviderSettings(
            kind="openai", api_base="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY"
        ),
        "simulated": ProviderSettings(kind="simulated"),
    }


class TelemetrySettings(BaseModel):
    """``[telemetry]``: OpenTelemetry traces."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exporter: Literal["none", "console", "otlp"] = "none"
    """Where spans go."""
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    """OTLP endpoint when ``exporter = "otlp"`` (HTTP: the full ``/v1/traces`` URL;
    gRPC: ``host:port`` or ``http://host:port``)."""
    otlp_protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    """OTLP transport. ``grpc`` needs ``pip install opentelemetry-exporter-otlp-proto-grpc``."""
    otlp_headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Headers sent with every export (e.g. a collector's API key); never logged."""
    service_name: str = "promptlab"
    """``service.name`` of the spans."""
