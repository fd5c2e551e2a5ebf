"""Reading an upstream's body: decompressed by us, bounded, every failure ours.

The session does not decompress (``auto_decompress=False``): here each chunk is inflated
with an output bound (``zlib``'s ``max_length``), so a small gzip bomb cannot expand
past ``max_response_bytes`` in memory, and a malformed or truncated gzip body becomes a
:class:`~providers.errors.BadResponse` instead of a ``zlib.error`` escaping the call.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

import aiohttp

from promptlab.providers.errors import (
    BadResponse,
    ConnectionLost,
    ProviderTimeout,
    ResponseTooLarge,
)

ACCEPT_ENCODING = "gzip, deflate"
"""What we ask for: the encodings :class:`Decoder` reads."""


class Decoder:
    """Inflates one body (``Content-Encoding`` gzip, deflate or none), bounded."""

    def __init__(self, encoding: str | None, limit: int, what: str) -> None:
        enc = (encoding or "identity").strip().lower()
        self._what = what
        self._limit = limit
        self._size = 0
        self._zlib: zlib._Decompress | None
        if enc in ("identity", ""):
            self._zlib = None
        elif enc in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)
        else:
            raise BadResponse(
                f"{what} answered with Content-Encoding {enc!r}, which we did not ask for"
            )

    def _count(self, data: bytes) -> bytes:
        self._size += len(data)
        if self._size > self._limit:
            raise ResponseTooLarge(
                f"{self._what} sent a body over the limit of {self._limit} bytes "
                "(providers.<name>.max_response_bytes)"
            )
        return data

    def feed(self, chunk: bytes) -> bytes:
        if self._zlib is None:
            return self._count(chunk)
        out = bytearray()
        data = chunk
        try:
            while data:
                # Never inflate more than one byte past what the limit still allows.
                part = self._zlib.decompress(data, self._limit - self._size + 1)
                out += self._count(part)
                data = self._zlib.unconsumed_tail
                if self._zlib.eof:
                    break
        except zlib.error as exc:
            raise BadResponse(f"{self._what} sent a malformed compressed body: {exc}") from None
        return bytes(out)

    def finish(self) -> bytes:
        if self._zlib is None:
            return b""
        try:
            tail = self._zlib.flush()
        except zlib.error as exc:
            raise BadResponse(f"{self._what} sent a malformed compressed body: {exc}") from None
        if not self._zlib.eof:
            raise BadResponse(f"{self._what} sent a truncated compressed body")
        return self._count(tail)


def _payload_error(what: str, exc: BaseException) -> Exception:
    if isinstance(exc, TimeoutError):
        return ProviderTimeout(f"{what} stalled while sending its answer")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return BadResponse(f"{what} sent a broken body: {exc.__class__.__name__}")
    return ConnectionLost(f"{what}: connection lost while reading: {exc.__class__.__name__}")


async def iter_decoded(resp: aiohttp.ClientResponse, limit: int, what: str) -> AsyncIterator[bytes]:
    """The body's decoded chunks as they arrive; our errors only."""
    decoder = Decoder(resp.headers.get("Content-Encoding"), limit, what)
    try:
        async for chunk in resp.content.iter_any():
            data = decoder.feed(chunk)
            if data:
                yield data
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise _payload_error(what, exc) from None
    tail = decoder.finish()
    if tail:
        yield tail


async def read_body(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole decoded body, at most ``limit`` bytes."""
    length = resp.content_length
    encoding = resp.headers.get("Content-Encoding")
    if length is not None and length > limit and not encoding:
        raise ResponseTooLarge(
            f"{what} announced a body of {length} bytes, over the limit of {limit} "
            "(providers.<name>.max_response_bytes)"
        )
    if length is not None and not encoding:
        # The common case: a plain body of announced size, read in one go.
        try:
            return await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise _payload_error(what, exc) from None
    parts = [chunk async for chunk in iter_decoded(resp, limit, what)]
    return b"".join(parts)
