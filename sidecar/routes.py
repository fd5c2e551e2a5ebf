"""The ``/v1`` API and the probes: thin handlers over plain functions.

``POST /v1/chat/completions`` (see :mod:`sidecar.proxy`), ``POST /v1/feedback`` (see
:mod:`sidecar.feedback`),
``GET /v1/models``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from promptlab.sidecar import keys, passthrough
from promptlab.sidecar.errors import BadRequest, NotFound
from promptlab.sidecar.feedback import feedback_event
from promptlab.sidecar.metrics import CONTENT_TYPE
from promptlab.sidecar.ports import Publisher
from promptlab.sidecar.proxy import parse_body


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


FEEDBACK_PATH = "/v1/feedback"


async def feedback(request: web.Request) -> web.Response:
    """200 accepted, 202 pending (execution unknown here), 400 (see :mod:`sidecar.feedback`);
    404 for an execution the caller's key did not make (:mod:`sidecar.binding`)."""
    app = request.app
    try:
        body = parse_body(await request.read())
        desk = app[keys.FEEDBACK]
        # Checked before the desk remembers anything of this feedback.
        event = feedback_event(body, desk.redactor, desk.text_limit)
        if not app[keys.EXECUTION_IDS].may_rate(
            event.execution_id, request.headers.get("Authorization")
        ):
            # The same answer as an id nobody issued: a key learns nothing of others' calls.
            raise NotFound(
                f"no execution {event.execution_id!r} made with this key",
                code="unknown_execution",
                param="execution_id",
            )
        status, answer, event = desk.receive(body)
    except (BadRequest, NotFound):
        app[keys.METRICS].feedback("rejected")
        raise
    app[keys.PUBLISHER].publish(event)
    app[keys.METRICS].feedback(answer["status"])
    return web.json_response(answer, status=status)


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
    app.router.add_post(FEEDBACK_PATH, feedback)
    passthrough.setup(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
