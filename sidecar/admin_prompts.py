"""Defining prompts and variants through the admin API; bodies have the prompt file's shape.

* ``POST /admin/prompts``: create a prompt (the keys of ``config/prompts/*.toml``,
  ``variants`` included). 201; the same definition again 200 (idempotent); another
  definition under an existing id 409 (use ``PUT``).
* ``PUT /admin/prompts/{id}``: create (201) or update (200) the whole prompt. A variant
  whose content changed under the same name is a *new version* that starts with no
  evidence (as with ``"replace": true`` below); new names are new variants; variants
  the body does not name are kept (a variant is archived, never deleted). The champion
  does not move (promotion is the learner's decision), and a variant's ``status`` in
  the body applies to a new variant or version only (move an existing one with
  ``.../lifecycle``). The answer says what changed.
* ``PATCH /admin/prompts/{id}``: as ``PUT`` with the keys the body leaves out taken
  from the current definition (e.g. ``{"reward": {...}}`` alone).
* ``POST /admin/prompts/{id}/variants``: register one variant (``name``, ``model``,
  ``params``, ``system``, ``template``, ``status``): 201; the same body again 200;
  another body under an existing name 409 unless ``"replace": true`` (then 201, a new
  version).
* ``PUT /admin/prompts/{id}/variants/{name}``: create (201) or replace (200, a new
  version when the content differs) that variant; ``PATCH`` changes only the keys given
  (404 when there is no such variant).

Every definition is validated by the prompt kernel (:func:`prompts.check_prompt_data`,
the same rules as ``promptlab prompts validate``, unconfigured providers included) and a
refusal is one 400 listing every problem: ``error.message`` names each as ``field:
message`` and ``error.details`` holds them as ``{"field", "message"}`` objects.

A prompt file owns its id: its prompt-level keys cannot be changed here (409 naming
them); its variants can, as before. Where definitions are stored and how replicas and
restarts get them: :mod:`sidecar.definitions`.

Why one module of this size: the create, replace and patch routes of a definition share
its validation, its ownership rules and its refusal shapes; split by route, each would
restate them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from promptlab.prompts import (
    Problem,
    PromptChanges,
    PromptSpec,
    SpecError,
    VariantSpec,
    check_prompt_data,
    compare_prompts,
    definition_version,
)
from promptlab.prompts.definition import NETWORK_EVALUATION
from promptlab.prompts.loader import ModelRule, problems_from
from promptlab.sidecar import keys
from promptlab.sidecar.errors import BadRequest, Conflict, NotFound
from promptlab.sidecar.shaping import parse_body

log = logging.getLogger(__name__)

ACTOR = "admin-api"
VARIANT_KEYS = ("model", "params", "system", "template", "status")
"""What a variant's body may say besides its name (``PATCH`` merges these)."""


def refusal(what: str, problems: list[Problem], code: str) -> BadRequest:
    """One 400 naming every problem (``error.details`` lists them one by one)."""
    listed = "; ".join(f"{p.field}: {p.message}" for p in problems)
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return BadRequest(
        f"invalid {what} ({count}): {listed}",
        code=code,
        details=[{"field": p.field, "message": p.message} for p in problems],
    )


def _problems(source: str, exc: Exception) -> list[Problem]:
    if isinstance(exc, ValidationError):
        return problems_from(source, exc)
    if isinstance(exc, SpecError):
        return [Problem(source, field or "(prompt)", message) for field, message in exc.problems]
    return [Problem(source, "(prompt)", str(exc))]


def _providers(request: web.Request) -> list[str]:
    return request.app[keys.PROVIDERS].registry.names()


def _model_rule(request: web.Request) -> ModelRule:
    return request.app[keys.PROVIDERS].registry.route_problem


def _prompt_id(request: web.Request, body: dict[str, Any]) -> str:
    prompt_id = request.match_info["prompt_id"]
    if body.setdefault("id", prompt_id) != prompt_id:
        raise BadRequest(
            f"the body's id {body['id']!r} is not the path's {prompt_id!r}", param="id"
        )
    return prompt_id


def _sections(request: web.Request, body: dict[str, Any]) -> None:
    """Refuse a section that cannot apply to a prompt defined here (400 saying why):
    ``evaluation`` never runs for it (the learner evaluates its prompt files only), and
    a ``python`` evaluator would be code from the network. A prompt file's own section,
    sent back unchanged, is not a change."""
    evaluation = body.get("evaluation")
    if evaluation is None:
        return
    current = request.app[keys.CATALOG].get(str(body.get("id")))
    if current is not None and request.app[keys.CATALOG].from_file(current.id):
        own = current.evaluation
        if own is not None and own.model_dump(mode="json") == evaluation:
            return
    raise refusal(
        "prompt", [Problem("body", "evaluation", NETWORK_EVALUATION)], "section_not_allowed"
    )


async def _check(data: dict[str, Any], request: web.Request) -> PromptSpec:
    """The prompt ``data`` defines, every rule run off the event loop: rendering each
    template once within its bounds takes up to ``time_s`` for a template built to
    exhaust them, and ``/healthz`` and every call keep being answered meanwhile."""
    spec, problems = await asyncio.to_thread(
        check_prompt_data,
        data,
        "body",
        providers=_providers(request),
        model_rule=_model_rule(request),
    )
    if spec is None:
        raise refusal("prompt", problems, "invalid_prompt")
    return spec


def merge(current: PromptSpec | None, new: PromptSpec) -> PromptSpec:
    """The prompt after ``new`` is applied to ``current`` (see the module docstring):
    unchanged variants stay as they are, new ones and new versions are ``api`` variants,
    the champion stays, variants ``new`` does not name are kept after the others."""
    known = {v.name: v for v in current.variants} if current is not None else {}
    variants: list[VariantSpec] = []
    for variant in new.variants:
        before = known.get(variant.name)
        if before is not None and before.version == variant.version:
            variants.append(before)
            continue
        update: dict[str, Any] = {"origin": "api"}
        if current is not None:
            update["champion"] = before is not None and before.champion
        variants.append(variant.model_copy(update=update))
    named = {v.name for v in new.variants}
    variants += [v for v in known.values() if v.name not in named]
    data = new.model_dump()
    data["variants"] = [v.model_dump() for v in variants]
    return PromptSpec.model_validate(data)


@dataclass(slots=True)
class Applied:
    """What applying one definition did."""

    spec: PromptSpec
    changes: PromptChanges
    created: bool
    source: str
    event_ids: list[str]
    stored: bool


async def _apply(request: web.Request, new: PromptSpec, *, create_only: bool = False) -> Applied:
    """Merge, compare, store and announce one prompt definition.

    ``create_only``: an existing prompt with another definition is a 409.
    """
    app = request.app
    definitions = app[keys.DEFINITIONS]
    catalog = app[keys.CATALOG]
    async with definitions.lock:
        current = catalog.get(new.id)
        try:
            spec = merge(current, new)
        except (ValidationError, SpecError) as exc:
            named = {v.name for v in new.variants}
            left = [v.name for v in current.variants if v.name not in named] if current else []
            what = "prompt (as merged with the current one: the champion stays"
            what += f", variants not named are kept: {', '.join(left)})" if left else ")"
            raise refusal(what, _problems("merged", exc), "invalid_prompt") from None
        named = {v.name for v in new.variants}
        kept = tuple(v.name for v in spec.variants if v.name not in named)
        changes = replace(compare_prompts(current, spec), absent=kept)
        from_file = catalog.from_file(new.id)
        if current is not None and changes.changed and create_only:
            raise Conflict(
                f"prompt {new.id!r} exists with another definition "
                f"({'; '.join(changes.words())}); PUT /admin/prompts/{new.id} updates it",
                code="prompt_exists",
                param="id",
            )
        if from_file and changes.fields:
            raise Conflict(
                f"prompt {new.id!r} is defined by a prompt file, which owns its "
                f"{', '.join(changes.fields)}: edit the file (its variants can be changed here)",
                code="prompt_from_file",
                param=changes.fields[0],
            )
        names = [*changes.added, *(name for name, _, _ in changes.new_versions)]
        ids: list[str] = []
        stored = current is not None
        if changes.changed:
            if from_file:
                ids = await definitions.define_variants(spec, names)
            else:
                words = ["created"] if current is None else changes.words()
                ids, stored = await definitions.define_prompt(
                    spec, actor=ACTOR, changes=words, variants=names
                )
            for name, old, version in changes.new_versions:
                log.warning(
                    "variant %s/%s replaced through /admin: version %s -> %s (evidence "
                    "starts at zero)",
                    spec.id,
                    name,
                    old,
                    version,
                )
            log.info("prompt %s defined through /admin: %s", spec.id, "; ".join(changes.words()))
    source = "file" if from_file else "api"
    return Applied(spec, changes, current is None, source, ids, stored)


async def _answer_prompt(
    request: web.Request, new: PromptSpec, *, create_only: bool = False
) -> web.Response:
    done = await _apply(request, new, create_only=create_only)
    spec, changes = done.spec, done.changes
    body: dict[str, Any] = {
        "prompt_id": spec.id,
        "created": done.created,
        "changed": changes.changed,
        "source": done.source,
        "version": definition_version(spec),
        "champion": spec.champion.name,
        "changes": changes.to_dict(),
        "variants": [
            {"name": v.name, "version": v.version, "origin": v.origin, "status": v.status}
            for v in spec.variants
        ],
        "event_ids": done.event_ids,
        "stored": done.stored,
    }
    requested = next((v.name for v in new.variants if v.champion), None)
    if not done.created and requested is not None and requested != spec.champion.name:
        body["note"] = (
            f"the champion stays {spec.champion.name}: promote {requested} "
            f"(POST /admin/prompts/{spec.id}/promote) to make it the champion"
        )
    return web.json_response(body, status=201 if done.created else 200)


# --------------------------------------------------------------------------- prompts


async def create_prompt(request: web.Request) -> web.Response:
    body = parse_body(await request.read())
    if not isinstance(body.get("id"), str):
        raise refusal("prompt", [Problem("body", "id", "required")], "invalid_prompt")
    _sections(request, body)
    return await _answer_prompt(request, await _check(body, request), create_only=True)


async def put_prompt(request: web.Request) -> web.Response:
    body = parse_body(await request.read())
    _prompt_id(request, body)
    _sections(request, body)
    return await _answer_prompt(request, await _check(body, request))


async def patch_prompt(request: web.Request) -> web.Response:
    body = parse_body(await request.read())
    prompt_id = _prompt_id(request, body)
    _sections(request, body)
    current = request.app[keys.CATALOG].get(prompt_id)
    if current is None:
        raise NotFound(f"unknown prompt {prompt_id!r}", code="unknown_prompt")
    data = {**current.model_dump(mode="json", exclude={"variants"}), **body}
    data.setdefault("variants", [])
    if not data["variants"]:  # keys of the prompt only: every variant stays as it is
        data["variants"] = [v.model_dump(mode="json") for v in current.variants]
    return await _answer_prompt(request, await _check(data, request))


# --------------------------------------------------------------------------- variants


async def variant_from_body(body: dict[str, Any]) -> VariantSpec:
    """A VariantSpec from the API body (origin ``api``, never champion); 400 naming
    problems. Checked off the event loop, like a prompt (:func:`_check`)."""
    data = {k: v for k, v in body.items() if k not in ("champion", "origin")}
    try:
        return await asyncio.to_thread(
            VariantSpec.model_validate, {**data, "origin": "api", "champion": False}
        )
    except (ValidationError, SpecError) as exc:
        raise refusal("variant", _problems("variant", exc), "invalid_variant") from None


def _existing(request: web.Request) -> PromptSpec:
    prompt_id = request.match_info["prompt_id"]
    prompt = request.app[keys.CATALOG].get(prompt_id)
    if prompt is None:
        raise NotFound(f"unknown prompt {prompt_id!r}", code="unknown_prompt")
    return prompt


async def _with(request: web.Request, prompt: PromptSpec, variant: VariantSpec) -> PromptSpec:
    """``prompt`` with ``variant`` added or replaced, every rule run; 400 otherwise."""
    data = prompt.model_dump(mode="json")
    dumped = variant.model_dump(mode="json")
    names = [v["name"] for v in data["variants"]]
    if variant.name in names:  # in place, so a problem's index is the variant's own
        index = names.index(variant.name)
        dumped["champion"] = data["variants"][index]["champion"]  # the champion stays
        data["variants"][index] = dumped
    else:
        data["variants"].append(dumped)
    spec, problems = await asyncio.to_thread(
        check_prompt_data,
        data,
        "prompt",
        providers=_providers(request),
        model_rule=_model_rule(request),
    )
    if spec is None:
        raise refusal("variant for this prompt", problems, "invalid_variant")
    return spec


async def register_variant(request: web.Request) -> web.Response:
    """``POST /admin/prompts/{id}/variants`` (see the module docstring)."""
    prompt = _existing(request)
    body = parse_body(await request.read())
    replace = body.pop("replace", False)
    if not isinstance(replace, bool):
        raise BadRequest("'replace' must be a boolean", param="replace")
    variant = await variant_from_body(body)
    existing = next((v for v in prompt.variants if v.name == variant.name), None)
    if existing is not None and existing.version != variant.version and not replace:
        raise Conflict(
            f"variant {variant.name!r} of {prompt.id!r} exists with another body "
            f"(version {existing.version}; this one is {variant.version}); send "
            '"replace": true to register it as a new version, whose evidence starts '
            "at zero",
            code="variant_exists",
            param="name",
        )
    return await _put_variant(request, prompt, variant, replaced=201)


async def put_variant(request: web.Request) -> web.Response:
    prompt = _existing(request)
    body = parse_body(await request.read())
    name = request.match_info["variant"]
    if body.setdefault("name", name) != name:
        raise BadRequest(
            f"the body's name {body['name']!r} is not the path's {name!r}", param="name"
        )
    return await _put_variant(request, prompt, await variant_from_body(body))


async def patch_variant(request: web.Request) -> web.Response:
    prompt = _existing(request)
    name = request.match_info["variant"]
    current = next((v for v in prompt.variants if v.name == name), None)
    if current is None:
        raise NotFound(f"prompt {prompt.id!r} has no variant {name!r}", code="unknown_variant")
    body = parse_body(await request.read())
    unknown = sorted(set(body) - {*VARIANT_KEYS, "name"})
    if unknown or body.get("name", name) != name:
        problems = [Problem("variant", key, "unknown key") for key in unknown]
        if body.get("name", name) != name:
            problems.append(Problem("variant", "name", "a variant cannot be renamed"))
        raise refusal("variant", problems, "invalid_variant")
    merged = {**current.model_dump(include=set(VARIANT_KEYS)), **body, "name": name}
    return await _put_variant(request, prompt, await variant_from_body(merged))


async def _put_variant(
    request: web.Request, prompt: PromptSpec, variant: VariantSpec, *, replaced: int = 200
) -> web.Response:
    """Apply ``variant`` to ``prompt``; 201 for a new variant, ``replaced`` for a new
    version, 200 for the same content again (nothing published)."""
    before = next((v for v in prompt.variants if v.name == variant.name), None)
    done = await _apply(request, await _with(request, prompt, variant))
    now = done.spec.variant(variant.name)
    body: dict[str, Any] = {
        "prompt_id": done.spec.id,
        "name": now.name,
        "model": now.model,
        "version": now.version,
        "origin": now.origin,
        "status": now.status,
        "changed": done.changes.changed,
    }
    if done.event_ids:
        body["event_id"] = done.event_ids[-1]
    if before is None:
        return web.json_response(body, status=201)
    if before.version != now.version:
        body["replaced_version"] = before.version
        return web.json_response(body, status=replaced)
    return web.json_response(body, status=200)


def setup(app: web.Application) -> None:
    app.router.add_post("/admin/prompts", create_prompt)
    app.router.add_put("/admin/prompts/{prompt_id}", put_prompt)
    app.router.add_patch("/admin/prompts/{prompt_id}", patch_prompt)
    app.router.add_post("/admin/prompts/{prompt_id}/variants", register_variant)
    app.router.add_put("/admin/prompts/{prompt_id}/variants/{variant}", put_variant)
    app.router.add_patch("/admin/prompts/{prompt_id}/variants/{variant}", patch_variant)
