"""SSE parsing and bounded decompression, on their own."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import pytest

from promptlab.providers import BadResponse, ConnectionLost, ResponseTooLarge, UpstreamFailed
from promptlab.providers.body import Decoder
from promptlab.providers.redact import Redactor
from promptlab.providers.sse import payloads

SECRET = "sk-test-sse-0123456789abcdef"


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(*parts: bytes) -> list[bytes]:
    return [p async for p in payloads(chunks(*parts), "x/m", Redactor([SECRET]))]


async def test_events_split_anywhere_and_crlf_are_parsed() -> None:
    got = await collect(b'data: {"a"', b":1}\r\n\r\nda", b"ta: {}\n\n: comment\n\ndata: [DONE]\n\n")
    assert got == [b'{"a":1}', b"{}", b"[DONE]"]


async def test_multi_line_data_is_joined() -> None:
    assert await collect(b"data: a\ndata: b\n\ndata: [DONE]\n\n") == [b"a\nb", b"[DONE]"]


async def test_an_error_event_field_fails_the_stream_redacted() -> None:
    with pytest.raises(UpstreamFailed) as caught:
        await collect(b"event: error\ndata: overloaded " + SECRET.encode() + b"\n\n")
    assert caught.value.kind == "stream_error" and SECRET not in caught.value.message


async def test_a_stream_without_done_is_cut() -> None:
    with pytest.raises(ConnectionLost):
        await collect(b"data: {}\n\n")


async def test_done_without_a_final_blank_line_ends_the_stream() -> None:
    assert await collect(b"data: {}\n\ndata: [DONE]") == [b"{}", b"[DONE]"]


def test_gzip_and_deflate_are_inflated() -> None:
    body = b"hello " * 1000
    gz = Decoder("gzip", 1 << 20, "x/m")
    assert gz.feed(gzip.compress(body)) + gz.finish() == body
    df = Decoder("deflate", 1 << 20, "x/m")
    assert df.feed(zlib.compress(body)) + df.finish() == body


def test_inflation_stops_at_the_limit() -> None:
    decoder = Decoder("gzip", 1 << 16, "x/m")
    with pytest.raises(ResponseTooLarge):
        decoder.feed(gzip.compress(b"\0" * (1 << 24)))


def test_a_truncated_gzip_body_is_a_bad_response() -> None:
    decoder = Decoder("gzip", 1 << 20, "x/m")
    data = gzip.compress(b"hello " * 1000)
    decoder.feed(data[: len(data) // 2])
    with pytest.raises(BadResponse):
        decoder.finish()


def test_an_encoding_we_did_not_ask_for_is_a_bad_response() -> None:
    with pytest.raises(BadResponse):
        Decoder("br", 1 << 20, "x/m")
