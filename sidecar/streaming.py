"""Relaying a streamed completion to the client as OpenAI-style SSE.

What the client receives is what OpenAI sends: ``data: <chunk JSON>\\n\\n`` events,
ending with ``data: [DONE]\\n\\n``. The upstream's chunk bytes are kept as they are with
two exceptions:

* the completion ``id`` becomes the execution id (replaced as the quoted string, so the
  rest of the chunk is untouched and no JSON round trip is paid per chunk);
* usage: the sidecar always asks the upstream for it (``stream_options.include_usage``)
  to record tokens and cost. A client that did not ask never sees the usage-only chunk
  (``"choices": []``); a usage object inside a content chunk is removed for it.
  (OpenAI also sends ``"usage": null`` on every chunk when usage was asked; those stay.)

A failure after the first byte cannot change the status any more: it is sent as an
OpenAI-style ``data: {"error": {...}}`` event and the stream ends without ``[DONE]``.
A client that goes away mid-stream ends the relay; the caller records "cancelled" and
the upstream connection is closed, which cancels the upstream call.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sidecar import codec
from sidecar.errors import Redactor, UpstreamError
from sidecar.upstream import Stream

DONE = b"[DONE]"
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


@dataclass(slots=True)
class StreamOutcome:
    """What the relay learned, for the ExecutionCompleted event."""

    status: str = "ok"
    """ok, error (upstream failed mid-stream) or cancelled (client went away)."""
    usage: dict[str, Any] | None = None
    ttft_ms: float | None = None
    error: UpstreamError | None = None
    output: list[str] = field(default_factory=list)
    """Content deltas, only when content capture is on."""


def _collect_content(chunk: dict[str, Any], out: list[str]) -> None:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if isinstance(delta.get("content"), str):
            out.append(delta["content"])


async def relay(
    request: web.Request,
    stream: Stream,
    *,
    execution_id: str,
    headers: dict[str, str],
    client_wants_usage: bool,
    capture: bool,
    started: float,
    redactor: Redactor,
) -> tuple[web.StreamResponse, StreamOutcome]:
    """Send ``stream`` to the client; never raises for upstream or client failures."""
    outcome = StreamOutcome()
    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **headers})
    new_id = b'"' + execution_id.encode() + b'"'
    old_id: bytes | None = None
    prepared = False
    done = False
    try:
        async for payload in stream:
            if payload == DONE:
                if not prepared:
                    await response.prepare(request)
                    prepared = True
                await response.write(b"data: [DONE]\n\n")
                done = True
                break
            if old_id is None:
                # The first chunk tells us the upstream's id; parse it once.
                try:
                    first = codec.loads(payload)
                    upstream_id = first.get("id") if isinstance(first, dict) else None
                except ValueError:
                    upstream_id = None
                old_id = (
                    b'"' + upstream_id.encode() + b'"'
                    if isinstance(upstream_id, str) and upstream_id
                    else b""
                )
            if old_id and old_id in payload:
                payload = payload.replace(old_id, new_id, 1)
            if b'"usage"' in payload or capture:
                chunk = codec.loads(payload)
                usage = chunk.get("usage") if isinstance(chunk, dict) else None
                if isinstance(usage, dict):
                    outcome.usage = usage
                    if not client_wants_usage:
                        if not chunk.get("choices"):
                            continue
                        del chunk["usage"]
                        payload = codec.dumps(chunk)
                if capture and isinstance(chunk, dict):
                    _collect_content(chunk, outcome.output)
            if outcome.ttft_ms is None:
                outcome.ttft_ms = (time.perf_counter() - started) * 1000.0
            if not prepared:
                await response.prepare(request)
                prepared = True
            await response.write(b"data: " + payload + b"\n\n")
    except UpstreamError as err:
        outcome.status = "error"
        outcome.error = err
        if not prepared:
            await response.prepare(request)
            prepared = True
        try:
            body = {
                "error": {
                    "message": redactor.redact(err.message),
                    "type": err.type,
                    "code": err.code,
                    "param": None,
                }
            }
            await response.write(b"data: " + json.dumps(body).encode() + b"\n\n")
        except ConnectionError:
            pass
    except ConnectionError:
        # The client went away: stop reading, which closes the upstream connection.
        outcome.status = "cancelled"
    finally:
        await stream.aclose()
    if outcome.status == "ok":
        try:
            if not prepared:
                await response.prepare(request)
            if not done:  # an upstream that ends without [DONE] still ends with it here
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:
            outcome.status = "cancelled"
    return response, outcome
