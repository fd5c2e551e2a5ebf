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
OpenAI-style ``data: {"error": {...}}`` event (redacted) and the stream ends there,
without ``[DONE]`` (a client must not take a broken answer for a whole one); the call is
recorded with status error. A client that goes away mid-stream ends the relay; the
caller records "cancelled" and the upstream connection is closed, which cancels the
upstream call.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from promptlab.providers import BadResponse, ProviderError, Redactor, Stream
from promptlab.sidecar import codec
from promptlab.sidecar.errors import from_provider
from promptlab.sidecar.recording import Outcome

DONE = b"[DONE]"
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def _collect_content(chunk: dict[str, Any], out: list[str]) -> None:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            out.append(delta["content"])


def error_event(err: ProviderError, redactor: Redactor) -> bytes:
    """The SSE event that ends a broken stream."""
    shaped = from_provider(err)
    body = {
        "error": {
            "message": redactor.redact(shaped.message),
            "type": shaped.type,
            "code": shaped.code,
            "param": None,
        }
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


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
) -> tuple[web.StreamResponse, Outcome]:
    """Send ``stream`` to the client; never raises for upstream or client failures."""
    outcome = Outcome(model=stream.model, attempts=list(stream.attempts))
    output: list[str] = []
    response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **headers})
    new_id = b'"' + execution_id.encode() + b'"'
    old_id: bytes | None = None
    prepared = False
    done = False
    try:
        async for payload in stream:
            if payload == DONE:
                done = True
                break
            if old_id is None:
                # The first chunk tells us the upstream's id; parse it once.
                try:
                    first = codec.loads(payload)
                except ValueError:
                    raise BadResponse(f"{stream.model} sent a chunk that is not JSON") from None
                upstream_id = first.get("id") if isinstance(first, dict) else None
                old_id = (
                    b'"' + upstream_id.encode() + b'"'
                    if isinstance(upstream_id, str) and upstream_id
                    else b""
                )
            if old_id and old_id in payload:
                payload = payload.replace(old_id, new_id, 1)
            if b'"usage"' in payload or capture:
                try:
                    chunk = codec.loads(payload)
                except ValueError:
                    raise BadResponse(f"{stream.model} sent a chunk that is not JSON") from None
                usage = chunk.get("usage") if isinstance(chunk, dict) else None
                if isinstance(usage, dict):
                    outcome.usage = usage
                    if not client_wants_usage:
                        if not chunk.get("choices"):
                            continue
                        del chunk["usage"]
                        payload = codec.dumps(chunk)
                if capture and isinstance(chunk, dict):
                    _collect_content(chunk, output)
            if outcome.ttft_ms is None:
                outcome.ttft_ms = (time.perf_counter() - started) * 1000.0
            if not prepared:
                await response.prepare(request)
                prepared = True
            await response.write(b"data: " + payload + b"\n\n")
        if not done:  # a stream ends with [DONE]; anything else is a broken stream
            raise BadResponse(f"{stream.model}: the stream ended before [DONE]")
    except ProviderError as err:
        outcome.status, outcome.error_kind = "error", err.kind
        outcome.http_status = from_provider(err).status
        try:
            if not prepared:
                await response.prepare(request)
                prepared = True
            await response.write(error_event(err, redactor))
            await response.write_eof()
        except ConnectionError:
            pass
    except ConnectionError:
        # The client went away: stop reading, which closes the upstream connection.
        outcome.status, outcome.error_kind = "cancelled", "client_disconnected"
    finally:
        await stream.aclose()
    if outcome.status == "ok":
        try:
            if not prepared:
                await response.prepare(request)
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:
            outcome.status, outcome.error_kind = "cancelled", "client_disconnected"
    if capture:
        outcome.output = "".join(output)
    return response, outcome
