"""Settings of the event layer: where NATS is and how events are kept."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class NatsSettings(BaseModel):
    """``[nats]``: the event log."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    url: str = "embedded"
    """``"embedded"`` starts (or reuses) a local nats-server with JetStream, closed by
    credentials promptlab generates in ``data_dir``; otherwise a NATS URL such as
    ``"nats://host:4222"`` (comma-separate several for a cluster). Keep credentials out
    of the URL: use the settings below (a URL is printed with its credentials redacted)."""
    user: str | None = None
    """External cluster: the user name (with ``password``)."""
    password: SecretStr | None = None
    """External cluster: the user's password; set it in the environment
    (``PROMPTLAB_NATS__PASSWORD``), not in a file under version control."""
    token: SecretStr | None = None
    """External cluster: an authentication token (``PROMPTLAB_NATS__TOKEN``)."""
    creds_file: Path | None = None
    """External cluster: a ``.creds`` file (user JWT and nkey seed, decentralised auth)."""
    nkey_seed_file: Path | None = None
    """External cluster: a file holding the user's nkey seed (``SU...``)."""
    tls_ca_file: Path | None = None
    """PEM file of the CAs that sign the servers' certificates (turns TLS on)."""
    tls_cert_file: Path | None = None
    """Client certificate (PEM) for servers that verify clients (turns TLS on)."""
    tls_key_file: Path | None = None
    """Private key of ``tls_cert_file`` when it is not in the same file."""
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
    publish_linger_ms: float = Field(default=10.0, ge=0, le=1000)
    """How long the publisher waits for a batch of events to fill before it sends a
    partial one. A JetStream publish costs about 240 us of CPU alone, 85 us per event
    in batches of 4 and 30-40 us in batches of 16-64 (bench box): a busy sidecar
    spends less on publishing with fuller batches; events reach the stream this much
    later at most."""
    publish_queue_size: int = Field(default=20_000, ge=100)
    """Bounded in-process queue between callers and the publisher; beyond it, events
    spill straight to the outbox instead of blocking a call."""
