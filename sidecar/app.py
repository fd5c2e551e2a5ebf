"""The application factory: ``create_app(settings, prompts=..., publisher=..., bus=...)``.

Everything the app uses is built here from what the caller hands in; nothing is
global. Lifecycle (``cleanup_ctx``): on start, the publisher starts,
the providers' connection pools open, the cost table is warmed, the prompt files' variants are
announced (VariantRegistered with deterministic ids, so replicas deduplicate); when a bus
is given, the prompts defined through the admin API are loaded from KV before the app
serves (:mod:`sidecar.definitions`) and watchers start: routing snapshots, and prompts
and variants defined elsewhere (admin API of another replica, mutation); last, the heap
built so far is
frozen for the garbage collector (see :func:`_freeze_startup_heap`). On stop, after
aiohttp has drained the in-flight calls: watchers cancelled, connection pool closed,
publisher flushed and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import ValidationError

from promptlab.events.bus import EventBus, KVEntry
from promptlab.events.snapshots import LearnerStatus, RoutingSnapshot
from promptlab.events.subjects import Bucket
from promptlab.events.watching import follow
from promptlab.prompts import DEFAULT_LIMITS, PromptSpec, cost_per_token, estimate_cost
from promptlab.providers import ProviderError, Providers, Redactor
from promptlab.sidecar import admin, admin_prompts, cors, keys, routes
from promptlab.sidecar.assignments import share_assignments, watch_assignments
from promptlab.sidecar.auth import KeyRing, check_admin, check_client
from promptlab.sidecar.binding import ExecutionIds
from promptlab.sidecar.catalog import Catalog
from promptlab.sidecar.definitions import Definitions
from promptlab.sidecar.demo_embeddings import QueryEmbedder
from promptlab.sidecar.demos import DemoPools, watch_pools
from promptlab.sidecar.errors import (
    BadRequest,
    NotFound,
    SidecarError,
    TooLarge,
    error_response,
    from_provider,
)
from promptlab.sidecar.feedback import FeedbackDesk, FeedbackPolicy, RecordingPublisher
from promptlab.sidecar.guard import mark_request_done
from promptlab.sidecar.metrics import Metrics
from promptlab.sidecar.ports import Publisher, SidecarSettings
from promptlab.sidecar.proxy import Proxy
from promptlab.sidecar.recording import Recorder
from promptlab.sidecar.router import Router
from promptlab.sidecar.routes import FEEDBACK_PATH
from promptlab.sidecar.telemetry import Telemetry

log = logging.getLogger(__name__)


def create_app(
    settings: SidecarSettings,
    *,
    prompts: Mapping[str, PromptSpec],
    publisher: Publisher,
    bus: EventBus | None = None,
    router_seed: int | None = None,
    environ: Mapping[str, str] | None = None,
    feedback_policy: FeedbackPolicy | None = None,
) -> web.Application:
    """The sidecar's aiohttp application.

    ``settings``: any object with ``server``, ``providers`` and ``telemetry`` sections
    (``promptlab.settings.Settings`` or :class:`sidecar.ports.SidecarConfig`).
    ``prompts``: the loaded prompt files by id. ``publisher``: the never-blocking event
    publisher; the app starts, flushes and closes it. ``bus``: the started event bus,
    for routing snapshots, stats and variants registered elsewhere (owned by the
    caller); without it the router stays on the config priors. ``router_seed`` makes
    routing reproducible (tests). ``environ`` is where provider keys are read (default:
    ``os.environ``). ``feedback_policy``: the learner's feedback settings, which
    ``/v1/feedback`` answers describe.
    """
    server = settings.server
    upstreams = Providers(
        settings.providers,
        default_provider=server.default_provider,
        redactor=Redactor(patterns=server.redact_patterns),
        environ=environ,
        cost=estimate_cost,
    )
    prompts_settings = getattr(settings, "prompts", None)  # [prompts.render], when given
    catalog = Catalog(prompts, limits=getattr(prompts_settings, "render", DEFAULT_LIMITS))
    desk = FeedbackDesk(
        catalog,
        feedback_policy,
        redactor=upstreams.redactor,
        text_limit=server.capture_max_chars,
        capture_all=server.capture_content,
    )
    publisher = RecordingPublisher(publisher, desk)
    router = Router(catalog.all(), seed=router_seed)
    catalog.subscribe(router.update_prompt)
    learner = getattr(settings, "learner", None)  # whose backlog is the learner lag
    metrics = Metrics(durable=getattr(learner, "durable", "promptlab-learner"))
    telemetry = Telemetry(settings.telemetry)
    client_keys, admin_keys = KeyRing(server.api_keys), KeyRing(server.admin_keys)
    ids = ExecutionIds(client_keys, admin_keys)
    proxy = Proxy(
        catalog=catalog,
        router=router,
        providers=upstreams,
        recorder=Recorder(
            publisher=publisher,
            metrics=metrics,
            telemetry=telemetry,
            server=server,
            redactor=upstreams.redactor,
        ),
        telemetry=telemetry,
        server=server,
        ids=ids,
        demos=DemoPools(
            upstreams.redactor,
            QueryEmbedder(
                upstreams,
                timeout_s=server.demo_embedding_timeout_s,
                counted=metrics.demo_fallback,
                redact=upstreams.redactor.redact,
            ),
        ),
    )

    middlewares = [cors.middleware(server.cors_origins)] if server.cors_origins else []
    app = web.Application(
        client_max_size=server.max_body_bytes, middlewares=[*middlewares, _boundary]
    )
    app.on_response_prepare.append(_no_header_injection)
    app[keys.SETTINGS] = settings
    app[keys.CATALOG] = catalog
    app[keys.DEFINITIONS] = Definitions(catalog, publisher, bus)
    app[keys.ROUTER] = router
    app[keys.UPSTREAMS] = upstreams
    app[keys.PUBLISHER] = publisher
    if bus is not None:
        app[keys.BUS] = bus
    app[keys.METRICS] = metrics
    app[keys.TELEMETRY] = telemetry
    app[keys.PROXY] = proxy
    app[keys.FEEDBACK] = desk
    app[keys.CLIENT_KEYS] = client_keys
    app[keys.ADMIN_KEYS] = admin_keys
    app[keys.EXECUTION_IDS] = ids
    app[keys.STATE] = {"prompts_loaded": True, "draining": False}
    routes.setup(app)
    admin.setup(app)
    admin_prompts.setup(app)
    app.cleanup_ctx.append(_lifecycle)
    return app


# ---------------------------------------------------------------------- boundary


@web.middleware
async def _boundary(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Auth by path, and every failure translated into an OpenAI-shaped error."""
    app = request.app
    try:
        path = request.path
        if path.startswith("/v1/"):
            authorization = request.headers.get("Authorization")
            # An admin key may rate any execution (sidecar.binding); it calls nothing else.
            if not (path == FEEDBACK_PATH and app[keys.ADMIN_KEYS].accepts(authorization)):
                check_client(app[keys.CLIENT_KEYS], authorization)
        elif path.startswith("/admin"):
            check_admin(app[keys.ADMIN_KEYS], request.headers.get("Authorization"), request.remote)
        return await handler(request)
    except SidecarError as err:
        return error_response(err, app[keys.UPSTREAMS].redactor, err.headers)
    except ProviderError as err:  # a model call outside the recorded flows (admin checks)
        return error_response(from_provider(err), app[keys.UPSTREAMS].redactor)
    except web.HTTPRequestEntityTooLarge:
        limit = app[keys.SETTINGS].server.max_body_bytes
        return error_response(
            TooLarge(
                f"the body exceeds server.max_body_bytes ({limit} bytes)", code="body_too_large"
            )
        )
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return error_response(
            SidecarError(
                f"{request.method} is not allowed on {request.path} (allowed: {allowed})",
                status=405,
                type="invalid_request_error",
                code="method_not_allowed",
            ),
            headers={"Allow": allowed},
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        shaped = (
            NotFound(exc.reason, code="not_found")
            if exc.status == 404
            else SidecarError(exc.reason, status=exc.status, type="invalid_request_error")
        )
        return error_response(shaped)
    except (HttpProcessingError, web.RequestPayloadError) as exc:
        # The body could not be read: a malformed gzip or chunked encoding, a short body.
        log.info("unreadable request body on %s: %s", request.path, type(exc).__name__)
        return error_response(
            BadRequest(
                "the request body cannot be read (content or transfer encoding)",
                code="invalid_body",
            )
        )
    except asyncio.CancelledError:
        raise
    except Exception:
        # A bug: log it (the traceback stays in our logs), answer without details.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            SidecarError("internal error in the promptlab sidecar", code="internal_error")
        )
    finally:
        mark_request_done(request)


async def _no_header_injection(request: web.Request, response: web.StreamResponse) -> None:
    """No CR or LF reaches a response header, whatever a value came from (a variant
    name registered at run time, a model name): aiohttp would refuse to send the
    response at all and close the connection."""
    bad = [(k, v) for k, v in response.headers.items() if "\r" in v or "\n" in v]
    for name, value in bad:
        log.warning("removed CR/LF from response header %s", name)
        response.headers[name] = value.replace("\r", " ").replace("\n", " ")


# ---------------------------------------------------------------------- lifecycle


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    publisher = app[keys.PUBLISHER]
    upstreams = app[keys.UPSTREAMS]
    catalog = app[keys.CATALOG]
    await publisher.start()
    await upstreams.start()
    # The cost table is a large JSON file read once: read it now, not on a user's call.
    models = {v.model for p in catalog.all() for v in p.variants} | {"openai/gpt-4o-mini"}
    await asyncio.to_thread(lambda: [cost_per_token(m) for m in models])
    demos = app[keys.PROXY].demos

    def prepare_demos() -> None:
        for prompt in catalog.all():
            demos.prepare(prompt)

    await asyncio.to_thread(prepare_demos)
    catalog.subscribe(demos.prepare)
    announced = [event for prompt in catalog.all() for event in prompt.registered_events()]
    for event in announced:
        publisher.publish(event)
    tasks: list[asyncio.Task[None]] = []
    bus = app.get(keys.BUS)
    if bus is not None:
        definitions = app[keys.DEFINITIONS]
        await definitions.load(announced)
        tasks.append(
            asyncio.create_task(
                watch_routing(bus, app[keys.ROUTER]), name="promptlab-routing-watch"
            )
        )
        tasks.append(
            asyncio.create_task(definitions.watch_prompts(), name="promptlab-prompt-watch")
        )
        tasks.append(
            asyncio.create_task(
                definitions.reconcile_quietly(), name="promptlab-definitions-reconcile"
            )
        )
        tasks.append(
            asyncio.create_task(definitions.watch_variants(), name="promptlab-variant-watch")
        )
        tasks.append(
            asyncio.create_task(
                watch_learner(bus, app[keys.METRICS]), name="promptlab-learner-watch"
            )
        )
        tasks.append(
            asyncio.create_task(
                watch_pools(bus, app[keys.PROXY].demos), name="promptlab-demo-watch"
            )
        )
        assignments = app[keys.ROUTER].assignments
        tasks.append(
            asyncio.create_task(
                share_assignments(bus, assignments), name="promptlab-assignment-share"
            )
        )
        tasks.append(
            asyncio.create_task(
                watch_assignments(bus, assignments), name="promptlab-assignment-watch"
            )
        )
    tasks.append(asyncio.create_task(sample_metrics(app), name="promptlab-metrics-sample"))
    _freeze_startup_heap()
    try:
        yield
    finally:
        await _cancel_all(tasks)
        await upstreams.close()
        try:
            await publisher.flush()
        finally:
            await publisher.close()
            app[keys.TELEMETRY].shutdown()
            app[keys.METRICS].close()


async def _cancel_all(tasks: list[asyncio.Task[None]], attempts: int = 5) -> None:
    """Cancel the background tasks and wait for them, cancelling again if one swallowed
    it (a KV watch cancelled while nats-py sets it up can: seen when the app stopped
    right after starting, e.g. on a port already in use)."""
    pending = [t for t in tasks if not t.done()]
    for _ in range(attempts):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, still = await asyncio.wait(pending, timeout=1.0)
        pending = list(still)
    if pending:
        log.warning("%d background tasks did not stop: %s", len(pending), pending)
    for task in tasks:
        if task.done() and not task.cancelled():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()


def _freeze_startup_heap() -> None:
    """Move everything allocated so far (modules, prompts, the cost table) out of the
    garbage collector's sight.

    Those objects live as long as the process; without this, every full collection
    walks all of them although only objects allocated per call can become garbage: on
    the bench box one took 148 ms under load (every call in flight waited for it), and
    after the freeze the longest took 0.7 ms. Reference counting still frees frozen
    objects; only cycles among them are never collected. The one full collection here
    costs about 40 ms of start-up.
    """
    gc.collect()
    gc.freeze()


async def watch_learner(bus: EventBus, metrics: Metrics) -> None:
    """Expose the active learner's counters (dead letters, feedback dropped...) in /metrics."""

    def apply(entry: KVEntry) -> None:
        if entry.key != "status":
            return
        try:
            metrics.learner(dict(LearnerStatus.decode(entry.value or b"").counters))
        except (ValidationError, ValueError) as exc:
            log.warning("ignoring a learner status: %s", exc)

    await follow(bus, str(Bucket.LEARNER), apply, what="learner status watch", logger=log)


async def sample_metrics(app: web.Application, interval_s: float = 1.0) -> None:
    """Keep the operational gauges fresh (other workers' /metrics read them from files)."""
    metrics, publisher, bus = app[keys.METRICS], app[keys.PUBLISHER], app.get(keys.BUS)
    while True:
        try:
            await metrics.sample(publisher, bus)
        except Exception as exc:  # never let a gauge stop the app
            log.debug("metrics sample failed: %s", exc)
        await asyncio.sleep(interval_s)


async def watch_routing(bus: EventBus, router: Router) -> None:
    """Apply every RoutingSnapshot the learner writes; keep the last one if NATS goes away."""

    def apply(entry: KVEntry) -> None:
        try:
            router.apply_snapshot(RoutingSnapshot.decode(entry.value or b""))
        except (ValidationError, ValueError) as exc:
            log.warning("ignoring a routing snapshot for %s: %s", entry.key, exc)

    await follow(bus, str(Bucket.ROUTING), apply, what="routing snapshot watch", logger=log)
