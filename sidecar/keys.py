"""Typed keys of what the aiohttp application holds (one place, no string keys)."""

from __future__ import annotations

from aiohttp import web

from promptlab.events.bus import EventBus
from promptlab.providers import Providers
from promptlab.sidecar.auth import KeyRing
from promptlab.sidecar.binding import ExecutionIds
from promptlab.sidecar.catalog import Catalog
from promptlab.sidecar.definitions import Definitions
from promptlab.sidecar.feedback import FeedbackDesk
from promptlab.sidecar.metrics import Metrics
from promptlab.sidecar.ports import AnalyticsSource, HistorySource, Publisher, SidecarSettings
from promptlab.sidecar.proxy import Proxy
from promptlab.sidecar.router import Router
from promptlab.sidecar.telemetry import Telemetry

SETTINGS = web.AppKey("settings", SidecarSettings)
CATALOG = web.AppKey("catalog", Catalog)
DEFINITIONS = web.AppKey("definitions", Definitions)
"""Prompts and variants defined at run time: writes, and the watches of other replicas'."""
ROUTER = web.AppKey("router", Router)
PROVIDERS = web.AppKey("providers", Providers)
UPSTREAMS = PROVIDERS
"""The older name of :data:`PROVIDERS`."""
PUBLISHER = web.AppKey("publisher", Publisher)
BUS = web.AppKey("bus", EventBus)
METRICS = web.AppKey("metrics", Metrics)
TELEMETRY = web.AppKey("telemetry", Telemetry)
PROXY = web.AppKey("proxy", Proxy)
FEEDBACK = web.AppKey("feedback", FeedbackDesk)
CLIENT_KEYS = web.AppKey("client_keys", KeyRing)
ADMIN_KEYS = web.AppKey("admin_keys", KeyRing)
EXECUTION_IDS = web.AppKey("execution_ids", ExecutionIds)
"""Issues execution ids and says who may rate one (:mod:`sidecar.binding`)."""
STATE = web.AppKey("state", dict)
ANALYTICS = web.AppKey("analytics", AnalyticsSource)
HISTORY = web.AppKey("history", HistorySource)
"""Set by ``promptlab serve`` (the learner's database); absent: analytics answer 503."""
"""Mutable flags of the running app (``prompts_loaded``, ``draining``)."""
