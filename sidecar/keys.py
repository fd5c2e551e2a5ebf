"""Typed keys of what the aiohttp application holds (one place, no string keys)."""

from __future__ import annotations

from aiohttp import web

from events.bus import EventBus
from providers import Providers
from sidecar.auth import KeyRing
from sidecar.catalog import Catalog
from sidecar.metrics import Metrics
from sidecar.ports import Publisher, SidecarSettings
from sidecar.proxy import Proxy
from sidecar.router import Router
from sidecar.telemetry import Telemetry

SETTINGS = web.AppKey("settings", SidecarSettings)
CATALOG = web.AppKey("catalog", Catalog)
ROUTER = web.AppKey("router", Router)
PROVIDERS = web.AppKey("providers", Providers)
UPSTREAMS = PROVIDERS
"""The older name of :data:`PROVIDERS`."""
PUBLISHER = web.AppKey("publisher", Publisher)
BUS = web.AppKey("bus", EventBus)
METRICS = web.AppKey("metrics", Metrics)
TELEMETRY = web.AppKey("telemetry", Telemetry)
PROXY = web.AppKey("proxy", Proxy)
CLIENT_KEYS = web.AppKey("client_keys", KeyRing)
ADMIN_KEYS = web.AppKey("admin_keys", KeyRing)
STATE = web.AppKey("state", dict)
"""Mutable flags of the running app (``prompts_loaded``, ``draining``)."""
