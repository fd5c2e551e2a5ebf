"""Settings of the sidecar: the HTTP server and telemetry (provider settings live in
:mod:`providers.settings`; re-exported here)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from promptlab.providers.settings import ProviderSettings, default_providers

__all__ = ["ProviderSettings", "ServerSettings", "TelemetrySettings", "default_providers"]


class ServerSettings(BaseModel):
    """``[server]``: the OpenAI-compatible HTTP front door."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

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
    """Truncate captured content to this many characters per message (and per string
    variable); a correction's answer longer than this is refused."""
    redact_patterns: list[str] = Field(default_factory=list)
    """Regular expressions whose matches become ``***`` wherever the sidecar writes text
    it did not make: captured content and variables, corrections, feedback comments and
    error messages (provider keys and key-shaped strings always are)."""
    default_provider: str = "openai"
    """Provider of an unrouted call whose ``model`` names no configured provider
    (``gpt-4o-mini`` rather than ``openai/gpt-4o-mini``)."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the API (CORS), e.g. ``["http://localhost:3000"]``;
    ``["*"]`` allows any. Empty (the default): no CORS headers at all."""
    workers: int = Field(default=1, ge=1, le=64)
    """Processes serving one port with SO_REUSEPORT (``promptlab serve --workers``)."""
    demo_embedding_timeout_s: float = Field(default=0.5, gt=0, le=30)
    """How long a call of a variant with ``demos.embedding_model`` waits for the
    embedding of its query; past it the call retrieves its demonstrations by BM25 (and
    the fallback is counted). The wait adds to the call's latency: a local embedding
    server answers in milliseconds, a hosted one in a few hundred."""

    @field_validator("redact_patterns")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"redact_patterns: {pattern!r} is not a regular expression: {exc}"
                ) from None
            if re.fullmatch(pattern, ""):
                raise ValueError(f"redact_patterns: {pattern!r} matches the empty string")
        return patterns


class TelemetrySettings(BaseModel):
    """``[telemetry]``: OpenTelemetry traces."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

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
