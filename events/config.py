"""Settings of the event layer: where NATS is and how events are kept."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class NatsSettings(BaseModel):
    """``[nats]``: the event log."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    url: str = "embedded"
    """``"embedded"`` starts (or reuses) a local nats-server with JetStream; otherwise a
    NATS URL such as ``"nats://host:4222"`` (comma-separate several for a cluster)."""
    data_dir: Path = Path(".promptlab/nats")
    """Where the embedded server keeps JetStream data, its port file and its log."""
    embedded_port: int = Field(default=0, ge=0, le=65535)
    """Loopback port for the embedded server; 0 picks a free one (never 4222)."""
    stream_replicas: int = Field(default=1, ge=1, le=5)
    """JetStream replicas of the PROMPTLAB stream (3 on a cluster)."""
    stream_max_age_days: float = Field(default=0, ge=0)
    """Drop events older than this many days; 0 keeps them forever. A replay can then
    rebuild only what the kept events say (see the docs, prompts.md, "Retention")."""
    stream_max_bytes: int = Field(default=0, ge=0)
    """Drop the oldest events once the stream holds this many bytes; 0: no limit."""
    duplicate_window_s: float = Field(default=120.0, gt=0)
    """Window in which JetStream drops a second event with the same id."""
    connect_timeout_s: float = Field(default=2.0, gt=0)
    """How long to wait for NATS when connecting."""
    outbox_dir: Path = Path(".promptlab/outbox")
    """Durable on-disk outbox for events published while NATS is unreachable."""
    publish_queue_size: int = Field(default=20_000, ge=100)
    """Bounded in-process queue between callers and the publisher; beyond it, events
    spill straight to the outbox instead of blocking a call."""
