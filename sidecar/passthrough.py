"""More of the OpenAI surface, passed through unrouted and recorded.

``POST /v1/embeddings``, ``/v1/completions`` and ``/v1/responses`` go to the provider
their ``model`` names (``provider/model``, or ``server.default_provider`` for a bare
name), body unchanged apart from the keys that could redirect a call, and are recorded
as ExecutionCompleted with ``endpoint`` set. Non-streamed only: ``"stream": true`` on
these is refused with a 400 (chat completions stream). A routed prompt on
``/v1/completions`` is served by :meth:`sidecar.proxy.Proxy.text_completion`; on the
other two it is a 400 that says where routed prompts are served.

``GET /v1/models`` lists the routed prompts (``promptlab/<id>``) and the models the
providers' settings name (``[providers.X] models = [...]``); ``GET /v1/models/{id}``
answers one of them, or an OpenAI-shaped 404.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from promptlab.providers import ProviderError, Providers
from promptlab.sidecar import keys
from promptlab.sidecar.catalog import Catalog
from promptlab.sidecar.errors import BadRequest, NotFound, from_provider
from promptlab.sidecar.proxy import routed_prompt
from promptlab.sidecar.recording import Call, Outcome
from promptlab.sidecar.shaping import parse_body, strip_overrides

ENDPOINTS = ("embeddings", "completions", "responses")
MODEL_PREFIX = "promptlab/"


def models_listing(catalog: Catalog, providers: Providers) -> dict[str, Any]:
    """Routed prompts and configured provider models, in the shape of ``GET /v1/models``."""
    data: list[dict[str, Any]] = [
        {
            "id": MODEL_PREFIX + p.id,
            "object": "model",
            "created": 0,
            "owned_by": "promptlab",
            "description": p.description,
        }
        for p in catalog.all()
    ]
    for name in providers.names():
        for model in providers.settings(name).models:
            data.append(
                {"id": f"{name}/{model}", "object": "model", "created": 0, "owned_by": name}
            )
    return {"object": "list", "data": data}


async def models(request: web.Request) -> web.Response:
    app = request.app
    return web.json_response(models_listing(app[keys.CATALOG], app[keys.PROVIDERS]))


async def model(request: web.Request) -> web.Response:
    app = request.app
    wanted = request.match_info["model_id"]
    for entry in models_listing(app[keys.CATALOG], app[keys.PROVIDERS])["data"]:
        if entry["id"] == wanted:
            return web.json_response(entry)
    raise NotFound(f"the model {wanted!r} does not exist", code="model_not_found", param="model")


def handler(endpoint: str) -> Any:
    """The handler of ``POST /v1/<endpoint>``."""

    async def passthrough(request: web.Request) -> web.Response:
        app = request.app
        providers = app[keys.PROVIDERS]
        recorder = app[keys.PROXY].recorder
        body = strip_overrides(parse_body(await request.read()))
        if routed_prompt(request, body) is not None:
            if endpoint == "completions":
                return await app[keys.PROXY].text_completion(request, body)
            raise BadRequest(
                f"routed prompts are served on /v1/chat/completions and /v1/completions; "
                f"/v1/{endpoint} is passed through unrouted: 'model' must name a provider's "
                "model ('provider/model')",
                param="model",
            )
        body.pop("promptlab", None)
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise BadRequest(
                f"'model' must name a provider's model ('provider/model'): /v1/{endpoint} "
                "is passed through unrouted",
                param="model",
            )
        if body.get("stream") is True:
            raise BadRequest(
                f"streaming is not supported on /v1/{endpoint} (it is on /v1/chat/completions)",
                param="stream",
            )
        try:
            target = providers.resolve(name, strict=False)
        except ProviderError as err:
            raise from_provider(err) from None
        execution_id = app[keys.EXECUTION_IDS].new(request.headers.get("Authorization"))
        call = Call(execution_id, target.provider, target.qualified, endpoint=endpoint)
        try:
            answer = await providers.post(target.qualified, "/" + endpoint, body, strict=False)
        except ProviderError as err:
            mapped = from_provider(err)
            recorder.finish(call, Outcome.failed(err.kind, mapped.status, err.attempts))
            mapped.headers = call.headers()
            raise mapped from None
        except asyncio.CancelledError:
            recorder.finish(call, Outcome.cancelled())
            raise
        usage = {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
        }
        recorder.finish(call, Outcome(usage=usage, cost_usd=answer.cost_usd))
        return web.Response(
            body=answer.raw, content_type="application/json", headers=call.headers()
        )

    return passthrough


def setup(app: web.Application) -> None:
    for endpoint in ENDPOINTS:
        app.router.add_post(f"/v1/{endpoint}", handler(endpoint))
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{model_id:.+}", model)
