"""What the sidecar needs from outside, as Protocols: its settings and the publisher.

The sidecar never imports the composition root (``promptlab``); ``promptlab.settings.
Settings`` satisfies :class:`SidecarSettings` structurally, and so does the small
:class:`SidecarConfig` that tests and embedders build directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from events.models import BaseEvent
from providers.settings import ProviderSettings, default_providers
from sidecar.config import ServerSettings, TelemetrySettings


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
