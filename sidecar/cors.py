"""CORS for browser apps, only for the origins ``server.cors_origins`` names (default none).

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from an allowed origin is
answered here, before authentication (browsers send preflights without credentials);
other responses to an allowed origin carry ``Access-Control-Allow-Origin`` and expose
the promptlab headers. ``"*"`` allows every origin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

EXPOSED = "X-Promptlab-Execution, X-Promptlab-Variant"
METHODS = "GET, POST, OPTIONS"
MAX_AGE_S = "600"


def middleware(origins: Iterable[str]) -> Middleware:
    allowed = frozenset(origins)
    any_origin = "*" in allowed

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or not (any_origin or origin in allowed):
            return await handler(request)
        vary = {"Vary": "Origin", "Access-Control-Allow-Origin": origin}
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            asked = request.headers.get("Access-Control-Request-Headers", "")
            return web.Response(
                status=204,
                headers={
                    **vary,
                    "Access-Control-Allow-Methods": METHODS,
                    "Access-Control-Allow-Headers": asked or "authorization, content-type",
                    "Access-Control-Max-Age": MAX_AGE_S,
                },
            )
        response = await handler(request)
        if not response.prepared:  # a stream's headers are sent already
            response.headers.update(vary)
            response.headers["Access-Control-Expose-Headers"] = EXPOSED
        return response

    return cors
