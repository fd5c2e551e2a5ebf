"""What the sidecar needs from outside, as Protocols: its settings and the publisher.

The sidecar never imports the composition root (``promptlab``); ``promptlab.settings.
Settings`` satisfies :class:`SidecarSettings` structurally, and so does the small
:class:`SidecarConfig` that tests and embedders build directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from promptlab.events.models import BaseEvent
from promptlab.providers.settings import ProviderSettings, default_providers
from promptlab.sidecar.config import ServerSettings, TelemetrySettings


class SidecarSettings(Protocol):
    """The settings sections the sidecar reads."""

    @property
    def server(self) -> ServerSettings: ...

    @property
    def providers(self) -> Mapping[str, ProviderSettings]: ...

    @property
    def telemetry(self) -> TelemetrySettings: ...


@dataclass(frozen=True)
class SidecarConfig:
    """A :class:`SidecarSettings` without the rest of promptlab's settings."""

    server: ServerSettings = field(default_factory=ServerSettings)
    providers: Mapping[str, ProviderSettings] = field(default_factory=default_providers)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)


@runtime_checkable
class Publisher(Protocol):
    """``events.publisher.EventPublisher``: never blocks, never raises on ``publish``."""

    def publish(self, event: BaseEvent) -> None: ...

    async def publish_durable(self, events: Sequence[BaseEvent], timeout: float = ...) -> str:
        """Return once the events are in the stream or fsynced to the outbox."""
        ...

    async def start(self) -> None: ...

    async def flush(self, timeout: float = ...) -> object: ...

    async def close(self) -> None: ...

    @property
    def healthy(self) -> bool: ...

    @property
    def outbox_active(self) -> bool: ...

    @property
    def running(self) -> bool:
        """True while the background publishing tasks are alive."""
        ...


class AnalyticsSource(Protocol):
    """Analytics by period of one prompt (``/admin/prompts/{id}/analytics``), as JSON.

    The composition root provides it from the learner's database; the sidecar never
    imports the learner."""

    async def __call__(
        self, prompt_id: str, interval: str, start: datetime | None, end: datetime | None
    ) -> dict[str, Any]: ...


class HistorySource(Protocol):
    """Version history of a prompt (``/admin/prompts/{id}/history``), as JSON."""

    async def __call__(self, prompt_id: str, variant: str | None) -> dict[str, Any]: ...
