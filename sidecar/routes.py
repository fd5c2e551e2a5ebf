"""The ``/v1`` API and the probes: thin handlers over plain functions.

``POST /v1/chat/completions`` (see :mod:`sidecar.proxy`), ``POST /v1/feedback``,
``GET /v1/models``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from events.models import FeedbackReceived
from sidecar import keys, passthrough
from sidecar.errors import BadRequest
from sidecar.inputs import check_text
from sidecar.metrics import CONTENT_TYPE
from sidecar.ports import Publisher
from sidecar.proxy import parse_body

MAX_FEEDBACK_INT = 2**53
"""Integer feedback values beyond this lose precision as floats (and ``float()`` of a
401-digit integer raises ``OverflowError``): refused."""


def feedback_event(body: dict[str, Any]) -> FeedbackReceived:
    """Validate ``{"execution_id", "name", "value", "comment"?}`` into an event (400 otherwise)."""
    execution_id = body.get("execution_id")
    if not isinstance(execution_id, str) or not execution_id.strip():
        raise BadRequest(
            "'execution_id' must be a non-empty string (the response id or X-Promptlab-Execution)",
            param="execution_id",
        )
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest(
            "'name' must be a non-empty string (e.g. the prompt's reward feedback name)",
            param="name",
        )
    value = body.get("value")
    if not isinstance(value, bool) and isinstance(value, int) and abs(value) > MAX_FEEDBACK_INT:
        raise BadRequest("'value' is out of range", param="value")
    if not isinstance(value, bool | int | float) or (
        not isinstance(value, bool) and not math.isfinite(value)
    ):
        raise BadRequest("'value' must be a boolean or a finite number", param="value")
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise BadRequest("'comment' must be a string", param="comment")
    check_text(execution_id, "execution_id")
    check_text(name, "name")
    if comment is not None:
        check_text(comment, "comment")
    return FeedbackReceived(
        execution_id=execution_id.strip(),
        name=name.strip(),
        value=value if isinstance(value, bool) else float(value),
        comment=comment,
    )


def readiness(
    publisher: Publisher, catalog_loaded: bool, bus_connected: bool
) -> tuple[bool, dict[str, Any]]:
    """Ready = the publisher runs, events can go somewhere (bus connected or the outbox
    takes them) and prompts are loaded."""
    running = publisher.running
    events_ok = running and (bus_connected or publisher.healthy or publisher.outbox_active)
    checks = {
        "events": "ok" if events_ok else "unavailable",
        "publisher": "running" if running else "stopped",
        "prompts": "ok" if catalog_loaded else "not loaded",
    }
    return events_ok and catalog_loaded, checks


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await request.app[keys.PROXY].chat(request)


async def feedback(request: web.Request) -> web.Response:
    event = feedback_event(parse_body(await request.read()))
    request.app[keys.PUBLISHER].publish(event)
    return web.json_response(
        {
            "id": event.event_id,
            "object": "feedback",
            "execution_id": event.execution_id,
            "status": "accepted",
        }
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    bus = app.get(keys.BUS)
    state = app[keys.STATE]
    ready, checks = readiness(
        app[keys.PUBLISHER],
        bool(state.get("prompts_loaded")),
        bool(bus is not None and bus.connected),
    )
    if state.get("draining"):
        ready, checks["server"] = False, "draining"
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    await app[keys.METRICS].sample(app[keys.PUBLISHER], app.get(keys.BUS))
    return web.Response(body=app[keys.METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/feedback", feedback)
    passthrough.setup(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
