"""The admin API (``/admin``): see prompts and their stats, steer the learner.

Reached with an admin key (``server.admin_keys``), or from loopback only when none is
configured (see :mod:`sidecar.auth`). Defining prompts and variants (``POST``/``PUT``/
``PATCH``) is :mod:`sidecar.admin_prompts`.

* ``GET  /admin/prompts`` and ``GET /admin/prompts/{id}``: prompts (``source``: a prompt
  ``file`` or the ``api``), variants with their lifecycle ``status`` (the learner's,
  from the routing snapshot, else the definition's), the live traffic shares and, when
  the learner has written one, its StatsSnapshot. ``archived`` variants are left out
  unless ``?all=1``; ``hidden`` counts them.
* ``POST /admin/prompts/{id}/promote`` ``{"variant", "reason"?}``, ``.../rollback``,
  ``.../pause``, ``.../resume``: publish the command event and return 202 with its
  ``command_id``. The learner carries commands out (or answers CommandRejected); the
  new routing reaches every replica through the routing snapshot.
* ``POST /admin/prompts/{id}/variants/{name}/lifecycle`` ``{"status", "reason"?,
  "actor"?}``: ask the learner to move a variant to ``active``, ``deprecated`` or
  ``archived`` (202 with the ``command_id``; the learner refuses a move that is not
  allowed, e.g. deprecating the champion, with CommandRejected).
* ``GET /admin/prompts/{id}/analytics?interval=hour|day|week|month&from=&to=``: per
  variant and period, as ``promptlab analytics --json`` prints it (503 when this
  process has no learner database to read).
* ``GET /admin/prompts/{id}/history?variant=``: every version of each variant, as
  ``promptlab prompts history --json`` prints it (503 likewise).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from promptlab.events.bus import BusError
from promptlab.events.kinds import VariantLifecycle
from promptlab.events.models import (
    BaseEvent,
    LifecycleCommand,
    PauseCommand,
    PromoteCommand,
    RollbackCommand,
)
from promptlab.events.snapshots import RoutingSnapshot, StatsSnapshot
from promptlab.events.subjects import Bucket
from promptlab.prompts import PromptSpec
from promptlab.sidecar import keys
from promptlab.sidecar.errors import BadRequest, NotFound, SidecarError
from promptlab.sidecar.shaping import parse_body

log = logging.getLogger(__name__)

ACTOR = "admin-api"


def _prompt(request: web.Request) -> PromptSpec:
    prompt_id = request.match_info["prompt_id"]
    prompt = request.app[keys.CATALOG].get(prompt_id)
    if prompt is None:
        raise NotFound(f"unknown prompt {prompt_id!r}", code="unknown_prompt")
    return prompt


async def _stats(app: web.Application, prompt_id: str) -> StatsSnapshot | None:
    bus = app.get(keys.BUS)
    if bus is None or not bus.connected:
        return None
    try:
        entry = await bus.kv_get(str(Bucket.STATS), prompt_id)
        if entry is None or entry.value is None:
            return None
        return StatsSnapshot.decode(entry.value)
    except (BusError, ValidationError, ValueError) as exc:
        log.warning("stats of %s unavailable: %s", prompt_id, exc)
        return None


def lifecycles(prompt: PromptSpec, snapshot: RoutingSnapshot | None) -> dict[str, str]:
    """Each variant's lifecycle: the learner's (a carried-out command, in the routing
    snapshot) when it states one, else the definition's ``status``."""
    states = {v.name: str(v.status) for v in prompt.variants}
    if snapshot is not None:
        states.update(
            {
                arm.variant: str(arm.lifecycle)
                for arm in snapshot.arms
                if arm.variant in states and "lifecycle" in arm.model_fields_set
            }
        )
    return states


async def describe(
    app: web.Application, prompt: PromptSpec, *, show_all: bool = False
) -> dict[str, Any]:
    """One prompt for the admin API: config, routing now, and the learner's stats.

    ``archived`` variants are left out unless ``show_all``.
    """
    router = app[keys.ROUTER]
    snapshot = router.snapshot(prompt.id)
    stats = await _stats(app, prompt.id)
    by_variant = {v.variant: v for v in stats.variants} if stats else {}
    shares = router.shares(prompt.id)
    champion = router.champion(prompt.id).variant
    states = lifecycles(prompt, snapshot)
    shown = [v for v in prompt.variants if show_all or states[v.name] != "archived"]
    return {
        "id": prompt.id,
        "description": prompt.description,
        "source": "file" if app[keys.CATALOG].from_file(prompt.id) else "api",
        "routing": {
            "strategy": prompt.routing.strategy,
            "exploration_cap": snapshot.exploration_cap
            if snapshot
            else prompt.routing.exploration_cap,
            "sticky": prompt.routing.sticky,
            "paused": snapshot.paused if snapshot else False,
            "snapshot_version": snapshot.version if snapshot else 0,
        },
        "champion": champion,
        "variants": [
            {
                "name": v.name,
                "model": v.model,
                "version": v.version,
                "origin": v.origin,
                "status": states[v.name],
                "champion": v.name == champion,
                "traffic_share": round(shares.get(v.name, 0.0), 6),
                "stats": by_variant[v.name].model_dump(mode="json")
                if v.name in by_variant
                else None,
            }
            for v in shown
        ],
        "hidden": {"archived": len(prompt.variants) - len(shown)},
        "stats": None
        if stats is None
        else {k: v for k, v in stats.model_dump(mode="json").items() if k != "variants"},
    }


async def _accepted(app: web.Application, command: BaseEvent) -> web.Response:
    # Durable before the answer: a command the caller was told is accepted survives a
    # crash of this process right after it (in the stream, or the on-disk outbox).
    try:
        await app[keys.PUBLISHER].publish_durable([command])
    except BusError as exc:
        raise SidecarError(
            f"the command cannot be stored now ({exc}); try again",
            status=503,
            code="commands_unavailable",
        ) from None
    return web.json_response(
        {
            "command_id": command.event_id,
            "type": getattr(command, "type", ""),
            "status": "accepted",
        },
        status=202,
    )


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise BadRequest("'reason' must be a string", param="reason")
    return reason


async def _optional_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    return parse_body(raw) if raw.strip() else {}


def show_all(request: web.Request) -> bool:
    """``?all=1`` (or ``true``, ``yes``): archived variants are listed too."""
    value = request.query.get("all", "")
    if value.lower() in ("", "0", "false", "no"):
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    raise BadRequest(f"'all' must be 1 or 0, got {value!r}", param="all")


async def list_prompts(request: web.Request) -> web.Response:
    app, everything = request.app, show_all(request)
    data = [await describe(app, p, show_all=everything) for p in app[keys.CATALOG].all()]
    return web.json_response({"data": data})


async def show_prompt(request: web.Request) -> web.Response:
    return web.json_response(
        await describe(request.app, _prompt(request), show_all=show_all(request))
    )


async def promote(request: web.Request) -> web.Response:
    prompt = _prompt(request)
    body = await _optional_body(request)
    name = body.get("variant")
    if not isinstance(name, str) or not name:
        raise BadRequest("'variant' is required", param="variant")
    if name not in {v.name for v in prompt.variants}:
        raise BadRequest(
            f"prompt {prompt.id!r} has no variant {name!r}", code="unknown_variant", param="variant"
        )
    return await _accepted(
        request.app,
        PromoteCommand(prompt_id=prompt.id, variant=name, actor=ACTOR, reason=_reason(body)),
    )


async def rollback(request: web.Request) -> web.Response:
    prompt = _prompt(request)
    body = await _optional_body(request)
    return await _accepted(
        request.app, RollbackCommand(prompt_id=prompt.id, actor=ACTOR, reason=_reason(body))
    )


async def pause(request: web.Request) -> web.Response:
    prompt = _prompt(request)
    body = await _optional_body(request)
    return await _accepted(
        request.app,
        PauseCommand(prompt_id=prompt.id, paused=True, actor=ACTOR, reason=_reason(body)),
    )


async def resume(request: web.Request) -> web.Response:
    prompt = _prompt(request)
    body = await _optional_body(request)
    return await _accepted(
        request.app,
        PauseCommand(prompt_id=prompt.id, paused=False, actor=ACTOR, reason=_reason(body)),
    )


LIFECYCLE_TARGETS: tuple[VariantLifecycle, ...] = ("active", "deprecated", "archived")
"""States an operator may move a variant to (``draft`` is set in a prompt file only)."""


async def lifecycle(request: web.Request) -> web.Response:
    prompt = _prompt(request)
    name = request.match_info["variant"]
    if name not in {v.name for v in prompt.variants}:
        raise NotFound(f"prompt {prompt.id!r} has no variant {name!r}", code="unknown_variant")
    body = await _optional_body(request)
    status = body.get("status")
    if status not in LIFECYCLE_TARGETS:
        raise BadRequest(
            f"'status' must be one of {', '.join(LIFECYCLE_TARGETS)}, got {status!r}",
            param="status",
        )
    actor = body.get("actor", ACTOR)
    if not isinstance(actor, str) or not actor or len(actor) > 200:
        raise BadRequest("'actor' must be a non-empty string (at most 200)", param="actor")
    return await _accepted(
        request.app,
        LifecycleCommand(
            prompt_id=prompt.id, variant=name, status=status, actor=actor, reason=_reason(body)
        ),
    )


ANALYTICS_INTERVALS = ("hour", "day", "week", "month")


def _moment(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"{name!r} must be an ISO date or time, got {text!r}", param=name
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def analytics(request: web.Request) -> web.Response:
    prompt = _prompt(request)
    interval = request.query.get("interval", "day")
    if interval not in ANALYTICS_INTERVALS:
        raise BadRequest(
            f"'interval' must be one of {', '.join(ANALYTICS_INTERVALS)}, got {interval!r}",
            param="interval",
        )
    start, end = _moment(request, "from"), _moment(request, "to")
    source = request.app.get(keys.ANALYTICS)
    if source is None:
        raise SidecarError(
            "analytics need the learner's database; this process was started without one",
            status=503,
            code="analytics_unavailable",
        )
    return web.json_response(await source(prompt.id, interval, start, end))


async def history(request: web.Request) -> web.Response:
    prompt = _prompt(request)
    source = request.app.get(keys.HISTORY)
    if source is None:
        raise SidecarError(
            "history needs the learner's database; this process was started without one",
            status=503,
            code="history_unavailable",
        )
    return web.json_response(await source(prompt.id, request.query.get("variant") or None))


def setup(app: web.Application) -> None:
    app.router.add_get("/admin/prompts", list_prompts)
    app.router.add_get("/admin/prompts/{prompt_id}", show_prompt)
    app.router.add_post("/admin/prompts/{prompt_id}/promote", promote)
    app.router.add_post("/admin/prompts/{prompt_id}/rollback", rollback)
    app.router.add_post("/admin/prompts/{prompt_id}/pause", pause)
    app.router.add_post("/admin/prompts/{prompt_id}/resume", resume)
    app.router.add_post("/admin/prompts/{prompt_id}/variants/{variant}/lifecycle", lifecycle)
    app.router.add_get("/admin/prompts/{prompt_id}/analytics", analytics)
    app.router.add_get("/admin/prompts/{prompt_id}/history", history)
