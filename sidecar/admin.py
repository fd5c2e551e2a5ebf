"""The admin API (``/admin``): see prompts and their stats, add variants, steer the learner.

Reached with an admin key (``server.admin_keys``), or from loopback only when none is
configured (see :mod:`sidecar.auth`).

* ``GET  /admin/prompts`` and ``GET /admin/prompts/{id}``: prompts, variants, the live
  traffic shares and, when the learner has written one, its StatsSnapshot.
* ``POST /admin/prompts/{id}/variants``: register a variant (``name``, ``model``,
  ``params``, ``system``, ``template``). It is validated by the prompt kernel (every
  rule of the prompt runs again), added to this sidecar's live prompt set and announced
  as VariantRegistered (``origin = "api"``), so the learner and other replicas see it.
  201 with the variant; 400 naming each problem. A variant is (prompt, name, version =
  content hash): the same body again is idempotent (200, nothing published); another
  body under an existing name is a *new version* and answers 409 unless the body says
  ``"replace": true`` (then 201: the learner retires the old version and the new one
  starts with no evidence; a champion stays the champion).
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

from events.bus import BusError
from events.kinds import VariantLifecycle
from events.models import (
    BaseEvent,
    LifecycleCommand,
    PauseCommand,
    PromoteCommand,
    RollbackCommand,
    encode,
)
from events.snapshots import StatsSnapshot
from events.subjects import Bucket, variant_key
from prompts import PromptSpec, SpecError, VariantSpec
from sidecar import keys
from sidecar.errors import BadRequest, Conflict, NotFound, SidecarError
from sidecar.proxy import parse_body

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


async def describe(app: web.Application, prompt: PromptSpec) -> dict[str, Any]:
    """One prompt for the admin API: config, routing now, and the learner's stats."""
    router = app[keys.ROUTER]
    snapshot = router.snapshot(prompt.id)
    stats = await _stats(app, prompt.id)
    by_variant = {v.variant: v for v in stats.variants} if stats else {}
    shares = router.shares(prompt.id)
    champion = router.champion(prompt.id).variant
    return {
        "id": prompt.id,
        "description": prompt.description,
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
                "champion": v.name == champion,
                "traffic_share": round(shares.get(v.name, 0.0), 6),
                "stats": by_variant[v.name].model_dump(mode="json")
                if v.name in by_variant
                else None,
            }
            for v in prompt.variants
        ],
        "stats": None
        if stats is None
        else {k: v for k, v in stats.model_dump(mode="json").items() if k != "variants"},
    }


def _accepted(app: web.Application, command: BaseEvent) -> web.Response:
    app[keys.PUBLISHER].publish(command)
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


async def list_prompts(request: web.Request) -> web.Response:
    app = request.app
    return web.json_response({"data": [await describe(app, p) for p in app[keys.CATALOG].all()]})


async def show_prompt(request: web.Request) -> web.Response:
    return web.json_response(await describe(request.app, _prompt(request)))


def variant_from_body(body: dict[str, Any]) -> VariantSpec:
    """A VariantSpec from the API body (origin ``api``, never champion); 400 naming problems."""
    data = {k: v for k, v in body.items() if k not in ("champion", "origin")}
    try:
        return VariantSpec.model_validate({**data, "origin": "api", "champion": False})
    except (ValidationError, SpecError) as exc:
        raise BadRequest(f"invalid variant: {_problems(exc)}", code="invalid_variant") from None


def _problems(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'variant'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


async def register_variant(request: web.Request) -> web.Response:
    app = request.app
    prompt = _prompt(request)
    body = parse_body(await request.read())
    replace = body.pop("replace", False)
    if not isinstance(replace, bool):
        raise BadRequest("'replace' must be a boolean", param="replace")
    variant = variant_from_body(body)
    existing = next((v for v in prompt.variants if v.name == variant.name), None)
    if existing is not None:
        if existing.version == variant.version:
            return web.json_response(_registered(prompt.id, existing), status=200)
        if not replace:
            raise Conflict(
                f"variant {variant.name!r} of {prompt.id!r} exists with another body "
                f"(version {existing.version}; this one is {variant.version}); send "
                '"replace": true to register it as a new version, whose evidence starts '
                "at zero",
                code="variant_exists",
                param="name",
            )
        variant = variant.model_copy(update={"champion": existing.champion})
    app[keys.UPSTREAMS].resolve(
        variant.model, strict=True
    )  # 400 when its provider is not configured
    try:
        spec = app[keys.CATALOG].add_variant(prompt.id, variant)
    except (ValidationError, SpecError) as exc:
        raise BadRequest(
            f"the prompt cannot take this variant: {_problems(exc)}", code="invalid_variant"
        ) from None
    event = next(e for e in spec.registered_events() if e.variant == variant.name)
    app[keys.PUBLISHER].publish(event)
    bus = app.get(keys.BUS)
    if bus is not None:
        # Sidecars that start later read run-time variants from this bucket.
        try:
            await bus.kv_put(
                str(Bucket.VARIANTS), variant_key(spec.id, variant.name), encode(event)
            )
        except BusError as exc:
            log.warning(
                "variant %s/%s registered and queued as an event, but not stored for "
                "sidecars that start later: %s",
                spec.id,
                variant.name,
                exc,
            )
    if existing is not None:
        log.warning(
            "variant %s/%s replaced through /admin: version %s -> %s (evidence starts at zero)",
            spec.id,
            variant.name,
            existing.version,
            variant.version,
        )
    body_out = _registered(spec.id, spec.variant(variant.name))
    body_out["event_id"] = event.event_id
    if existing is not None:
        body_out["replaced_version"] = existing.version
    return web.json_response(body_out, status=201)


def _registered(prompt_id: str, variant: VariantSpec) -> dict[str, Any]:
    return {
        "prompt_id": prompt_id,
        "name": variant.name,
        "model": variant.model,
        "version": variant.version,
        "origin": variant.origin,
    }


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
    return _accepted(
        request.app,
        PromoteCommand(prompt_id=prompt.id, variant=name, actor=ACTOR, reason=_reason(body)),
    )


async def rollback(request: web.Request) -> web.Response:
    prompt = _prompt(request)
    body = await _optional_body(request)
    return _accepted(
        request.app, RollbackCommand(prompt_id=prompt.id, actor=ACTOR, reason=_reason(body))
    )


async def pause(request: web.Request) -> web.Response:
    prompt = _prompt(request)
    body = await _optional_body(request)
    return _accepted(
        request.app,
        PauseCommand(prompt_id=prompt.id, paused=True, actor=ACTOR, reason=_reason(body)),
    )


async def resume(request: web.Request) -> web.Response:
    prompt = _prompt(request)
    body = await _optional_body(request)
    return _accepted(
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
    return _accepted(
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
    app.router.add_post("/admin/prompts/{prompt_id}/variants", register_variant)
    app.router.add_post("/admin/prompts/{prompt_id}/promote", promote)
    app.router.add_post("/admin/prompts/{prompt_id}/rollback", rollback)
    app.router.add_post("/admin/prompts/{prompt_id}/pause", pause)
    app.router.add_post("/admin/prompts/{prompt_id}/resume", resume)
    app.router.add_post("/admin/prompts/{prompt_id}/variants/{variant}/lifecycle", lifecycle)
    app.router.add_get("/admin/prompts/{prompt_id}/analytics", analytics)
    app.router.add_get("/admin/prompts/{prompt_id}/history", history)
