"""Server-sent events: the ``data`` payloads of an OpenAI-style stream.

Parsed per the SSE spec (fields ``data`` and ``event``, multi-line data joined, blank
line ends an event). An error the upstream reports inside the stream (an ``event:
error`` or a ``{"error": ...}`` payload) becomes an :class:`UpstreamFailed`: the stream
does not go on as if it had answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from promptlab.providers import codec
from promptlab.providers.errors import ConnectionLost, UpstreamFailed
from promptlab.providers.redact import Redactor

DONE = b"[DONE]"


async def lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The lines of a body, without their line endings (``\\n`` or ``\\r\\n``)."""
    pending = b""
    async for chunk in chunks:
        if pending:
            chunk = pending + chunk
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                break
            end = nl - 1 if nl > start and chunk[nl - 1] == 13 else nl
            yield chunk[start:end]
            start = nl + 1
        pending = chunk[start:]
    if pending:
        yield pending.rstrip(b"\r")


def stream_error(payload: bytes, what: str, redactor: Redactor) -> UpstreamFailed | None:
    """The upstream's error when ``payload`` is an error event, else None."""
    if b'"error"' not in payload:
        return None
    try:
        data = codec.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict) or "error" not in data or data.get("choices"):
        return None
    err = data["error"]
    message = err.get("message") if isinstance(err, dict) else err
    text = redactor.redact(str(message or "error"))[:500]
    return UpstreamFailed(f"{what} reported an error mid-stream: {text}", kind="stream_error")


async def payloads(
    chunks: AsyncIterator[bytes], what: str, redactor: Redactor
) -> AsyncIterator[bytes]:
    """The ``data`` payloads up to and including ``[DONE]``.

    A stream that ends without ``[DONE]`` was cut: :class:`ConnectionLost`.
    """
    data: list[bytes] = []
    event = b""
    async for line in lines(chunks):
        if not line:
            if data:
                payload = b"\n".join(data)
                data.clear()
                if payload == DONE:
                    yield payload
                    return
                if event == b"error":
                    text = redactor.redact(payload.decode("utf-8", "replace"))[:500]
                    raise UpstreamFailed(
                        f"{what} reported an error mid-stream: {text}", kind="stream_error"
                    )
                error = stream_error(payload, what, redactor)
                if error is not None:
                    raise error
                yield payload
            event = b""
        elif line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value[:1] == b" " else value)
        elif line.startswith(b"event:"):
            event = line[6:].strip()
    if data and b"\n".join(data) == DONE:
        yield DONE
        return
    raise ConnectionLost(f"{what}: the stream ended before [DONE]")
