"""Cases 13-19: bad input gets a clear OpenAI-shaped 4xx, nothing is recorded wrongly,
and the sidecar keeps serving (and publishing) afterwards.

Every case runs ``promptlab serve`` as a child process on its own nats-server, in front
of a fake upstream; a second fake upstream (``other_host``) must never be called.
"""

from __future__ import annotations

import asyncio
import sqlite3
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from fake_upstream import FakeUpstream
from procs import Reply, Stack, call_body, http, rss_mb, stream_books, stream_events, wait_books

from promptlab.events.models import ExecutionCompleted, FeedbackReceived
from promptlab.events.rejects import read_rejects

CHAT = "/v1/chat/completions"


async def still_serving(stack: Stack) -> str:
    """A normal routed call answers 200 and its event reaches the stream exactly once."""
    reply = await http("POST", stack.url + CHAT, json_body=call_body(1))
    assert reply.status == 200, reply.raw[:300]
    books = await wait_books(stack.nats.url, [reply.body["id"]], timeout=15)
    assert books[reply.body["id"]] == 1
    ready = await http("GET", stack.url + "/readyz")
    assert ready.status == 200, ready.body
    return str(reply.body["id"])


def gzip_bomb(gib: float) -> bytes:
    """``gib`` GiB of zeros, gzip-compressed (about 1 MB per GiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(int(gib * 1024))]
    return b"".join(parts) + compressor.flush()


async def test_13_malformed_bodies_and_headers(
    stack: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    s = stack()
    url = s.url + CHAT
    rss_before = rss_mb(s.serve.pid)
    bomb = gzip_bomb(1.0)
    cases: dict[str, Any] = {
        "malformed JSON": {"data": b'{"model": "promptlab/greet",'},
        "JSON array": {"data": b"[1, 2, 3]"},
        "JSON string": {"data": b'"hello"'},
        "wrong content type": {
            "data": b"model=promptlab%2Fgreet",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
        "empty body": {"data": b""},
        "body over the limit": {"data": b'{"x": "' + b"a" * (5 << 20) + b'"}'},
        "gzip request bomb (1 GiB)": {
            "data": bomb,
            "headers": {"Content-Encoding": "gzip", "Content-Type": "application/json"},
        },
        "malformed gzip": {
            "data": b"\x1f\x8b\x08\x00garbage-not-deflate" * 10,
            "headers": {"Content-Encoding": "gzip", "Content-Type": "application/json"},
        },
        "200 headers": {
            "json_body": call_body(0),
            "headers": {f"X-Filler-{i}": "x" for i in range(200)},
        },
        "one 100 KB header": {"json_body": call_body(0), "headers": {"X-Big": "b" * 100_000}},
    }
    refused: dict[str, int] = {}
    for name, kwargs in cases.items():
        reply: Reply = await http("POST", url, **kwargs)
        assert 400 <= reply.status < 500, (name, reply.status, reply.raw[:200])
        assert reply.openai_error, (name, reply.content_type, reply.raw[:200])
        assert b"b" * 200 not in reply.raw  # an oversized header is never echoed back
        refused[name] = reply.status
    rss_after = rss_mb(s.serve.pid)
    assert rss_after < rss_before + 200, (rss_before, rss_after)
    await still_serving(s)
    books = await stream_books(s.nats.url)
    assert sum(books.values()) == 1  # only the good call was recorded
    figures.update(
        refused=f"{len(refused)}/{len(cases)}",
        statuses=sorted(set(refused.values())),
        rss_growth_mb=round(rss_after - rss_before),
    )


async def _slow_socket(host: str, port: int, stop: asyncio.Event) -> float | None:
    """Send a request head one byte a second; return when the server closed it."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(host, port)
    started = loop.time()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100
    try:
        for byte in head:
            if stop.is_set():
                return None
            writer.write(bytes([byte]))
            try:
                await writer.drain()
                data = await asyncio.wait_for(reader.read(1024), timeout=1.0)
            except TimeoutError:
                continue
            except (ConnectionError, OSError):
                return loop.time() - started
            if not data or b"408" in data:
                return loop.time() - started
        return None
    finally:
        writer.close()


@pytest.mark.slow
async def test_14_slowloris(stack: Callable[..., Stack], figures: dict[str, Any]) -> None:
    s = stack("[server]\nheader_timeout_s = 3.0\n")
    host, port = s.url.removeprefix("http://").split(":")
    stop = asyncio.Event()
    slow = [asyncio.create_task(_slow_socket(host, int(port), stop)) for _ in range(200)]
    loop = asyncio.get_running_loop()
    worst = 0.0
    try:
        # Normal calls meanwhile, each within 1 s.
        for n in range(10):
            started = loop.time()
            reply = await http("POST", s.url + CHAT, json_body=call_body(n), timeout=5)
            worst = max(worst, loop.time() - started)
            assert reply.status == 200
            await asyncio.sleep(0.3)
        done, pending = await asyncio.wait(slow, timeout=20)
    finally:
        stop.set()
    closed = [t.result() for t in done if t.result() is not None]
    assert not pending and len(closed) == 200, (len(closed), len(pending))
    assert worst < 1.0, worst
    assert max(closed) < 3.0 + 4.0
    figures.update(
        slow_sockets=200,
        closed=len(closed),
        closed_after_s=f"{min(closed):.1f}-{max(closed):.1f}",
        worst_normal_call_s=round(worst, 2),
    )


async def test_15_invalid_unicode_and_nul(
    stack: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    s = stack()
    url = s.url + CHAT
    meta = {"variables": {"name": "x"}}
    lone = "\\ud800"  # a lone surrogate, as escaped JSON text
    raw_cases = {
        "invalid UTF-8 in a variable": b'{"model":"promptlab/greet","messages":[],'
        b'"promptlab":{"variables":{"name":"\xff\xfe"}}}',
        "lone surrogate in a routed subject": (
            '{"model":"promptlab/greet","messages":[],'
            '"promptlab":{"variables":{"name":"x"},"subject":"a' + lone + '"}}'
        ).encode(),
        "lone surrogate in an unrouted subject": (
            '{"model":"fake/model-a","messages":[{"role":"user","content":"hi"}],'
            '"promptlab":{"subject":"' + lone + '"}}'
        ).encode(),
        "lone surrogate in a variable": (
            '{"model":"promptlab/greet","messages":[],'
            '"promptlab":{"variables":{"name":"' + lone + '"}}}'
        ).encode(),
    }
    json_cases = {
        "NUL in a variable": call_body(0) | {"promptlab": {"variables": {"name": "a\x00b"}}},
        "NUL in the subject": call_body(0) | {"promptlab": {**meta, "subject": "a\x00"}},
    }
    refused = 0
    for name, data in raw_cases.items():
        reply = await http("POST", url, data=data, headers={"Content-Type": "application/json"})
        assert reply.status == 400 and reply.openai_error, (name, reply.status, reply.raw[:200])
        refused += 1
    for name, body in json_cases.items():
        reply = await http("POST", url, json_body=body)
        assert reply.status == 400 and reply.openai_error, (name, reply.status, reply.raw[:200])
        refused += 1
    feedback = s.url + "/v1/feedback"
    for name, data in {
        "lone surrogate in a feedback name": (
            '{"execution_id":"e1","name":"thumbs' + lone + '","value":true}'
        ).encode(),
        "NUL in a feedback name": b'{"execution_id":"e1","name":"thumbs\\u0000","value":true}',
        "401-digit feedback value": b'{"execution_id":"e1","name":"thumbs_up","value":1'
        + b"0" * 400
        + b"}",
    }.items():
        reply = await http(
            "POST", feedback, data=data, headers={"Content-Type": "application/json"}
        )
        assert reply.status == 400 and reply.openai_error, (name, reply.status, reply.raw[:200])
        refused += 1
    await still_serving(s)
    assert read_rejects(s.outbox_dir) == []
    figures.update(refused=refused, rejected_events=0)


async def test_16_no_header_injection(stack: Callable[..., Stack], figures: dict[str, Any]) -> None:
    s = stack()
    unrouted = await http(
        "POST",
        s.url + CHAT,
        json_body={
            "model": "fake/model-a\r\nX-Injected: 1",
            "messages": [{"role": "user", "content": "hi"}],
            "promptlab": {"subject": "s\r\nX-Injected: 2"},
        },
    )
    routed = await http(
        "POST",
        s.url + CHAT,
        json_body=call_body(0)
        | {"promptlab": {"variables": {"name": "x"}, "subject": "a\r\nX-I: 3"}},
    )
    for reply in (unrouted, routed):
        assert reply.body is not None, reply.raw[:200]
        assert not any(k.lower().startswith("x-i") for k in reply.headers), reply.headers
    await still_serving(s)
    figures.update(injected_headers=0)


async def test_16_variant_name_with_newline_refused(stack: Callable[..., Stack]) -> None:
    s = stack()
    reply = await http(
        "POST",
        s.url + "/admin/prompts/greet/variants",
        json_body={"name": "c\n", "model": "fake/model-a", "template": "Hi {{ name }}"},
    )
    assert reply.status == 400 and reply.openai_error, reply.raw[:300]
    await still_serving(s)


REDIRECTS: dict[str, Callable[[str], dict[str, Any]]] = {
    "api_base": lambda other: {"api_base": other},
    "base_url": lambda other: {"base_url": other},
    "extra_headers Host": lambda other: {"extra_headers": {"Host": other.split("/")[2]}},
    "headers": lambda other: {"headers": {"Host": other.split("/")[2]}},
    "metadata api_base": lambda other: {"metadata": {"api_base": other}},
    "link-local metadata URL": lambda other: {"api_base": "http://169.254.169.254/latest"},
}


async def test_17_no_call_leaves_for_another_host(
    stack: Callable[..., Stack], other_host: FakeUpstream, figures: dict[str, Any]
) -> None:
    s = stack()
    other = other_host.base_url
    header_sets = [
        {"Host": other.split("/")[2]},
        {"X-Forwarded-Host": other.split("/")[2]},
        {"X-Forwarded-Proto": "http", "Forwarded": f"host={other.split('/')[2]}"},
    ]
    calls = 0
    for name, extra in REDIRECTS.items():
        for body in (
            call_body(0, **extra(other)),
            call_body(0, stream=True, **extra(other)),
            {"model": "fake/model-a", "messages": [{"role": "user", "content": "x"}]}
            | extra(other),
        ):
            reply = await http("POST", s.url + CHAT, json_body=body)
            assert reply.status == 200, (name, reply.raw[:200])
            calls += 1
    for headers in header_sets:
        reply = await http("POST", s.url + CHAT, json_body=call_body(0), headers=headers)
        assert reply.status == 200, (headers, reply.raw[:200])
        calls += 1
        feedback = await http(
            "POST",
            s.url + "/v1/feedback",
            json_body={"execution_id": reply.body["id"], "name": "thumbs_up", "value": True},
            headers=headers,
        )
        assert feedback.status == 200
    assert len(other_host.requests) == 0
    assert len(s.upstream.requests) == calls
    figures.update(calls=calls, hits_on_other_host=len(other_host.requests))


async def test_17_variant_params_cannot_redirect(
    stack: Callable[..., Stack], other_host: FakeUpstream
) -> None:
    s = stack()
    reply = await http(
        "POST",
        s.url + "/admin/prompts/greet/variants",
        json_body={
            "name": "c",
            "model": "fake/model-a",
            "template": "Hi {{ name }}",
            "params": {"api_base": other_host.base_url, "temperature": 0.1},
        },
    )
    assert reply.status == 400 and reply.openai_error, reply.raw[:300]
    assert len(other_host.requests) == 0


async def test_18_template_syntax_in_values_is_data(
    stack: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    s = stack()
    payloads = ["{{ 7*7 }}", "{% for x in range(3) %}loop{% endfor %}", "{{ self.__init__ }}"]
    for value in payloads:
        body = call_body(0) | {"promptlab": {"variables": {"name": value}}}
        reply = await http("POST", s.url + CHAT, json_body=body)
        assert reply.status == 200, reply.raw[:200]
        sent = s.upstream.requests[-1].body["messages"][-1]["content"]
        assert value in sent, sent
    figures.update(rendered_literally=f"{len(payloads)}/{len(payloads)}")


SANDBOX_ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__['os'] }}",
    "{% set x = namespace() %}{{ x.__class__.__base__.__subclasses__() }}",
]


async def test_18_sandbox_escapes_refused_by_admin(
    stack: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    s = stack()
    for n, template in enumerate(SANDBOX_ESCAPES):
        reply = await http(
            "POST",
            s.url + "/admin/prompts/greet/variants",
            json_body={"name": f"evil{n}", "model": "fake/model-a", "template": template},
        )
        assert reply.status == 400 and reply.openai_error, (template, reply.status)
    await still_serving(s)
    figures.update(refused=f"{len(SANDBOX_ESCAPES)}/{len(SANDBOX_ESCAPES)}")


SQL = "'; DROP TABLE executions; --"


@pytest.mark.slow
async def test_19_sql_looking_strings_stored_verbatim(
    stack: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    s = stack(learner=True)
    body = call_body(0) | {"promptlab": {"variables": {"name": "x"}, "subject": SQL}}
    reply = await http("POST", s.url + CHAT, json_body=body)
    assert reply.status == 200
    feedback_name = "a' OR '1'='1"
    fb = await http(
        "POST",
        s.url + "/v1/feedback",
        json_body={"execution_id": reply.body["id"], "name": feedback_name, "value": 1},
    )
    assert fb.status == 200
    db = s.tmp_path / "sidecar" / "promptlab.db"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    found: set[str] = set()
    while loop.time() < deadline and found != {SQL, feedback_name}:
        found = await asyncio.to_thread(_strings_in_db, db, {SQL, feedback_name})
        await asyncio.sleep(0.2)
    assert SQL in found, "the subject was not stored verbatim (or not at all)"
    # Feedback names other than the reward are not projected: the stream keeps them.
    events = await stream_events(s.nats.url)
    assert [e.subject for e in events if isinstance(e, ExecutionCompleted)] == [SQL]
    assert [e.name for e in events if isinstance(e, FeedbackReceived)] == [feedback_name]
    figures.update(subject_in_db="verbatim", feedback_name_in_stream="verbatim")


def _strings_in_db(path: Any, wanted: set[str]) -> set[str]:
    """Which of ``wanted`` some text column of some table holds exactly."""
    found: set[str] = set()
    if not path.exists():
        return found
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in con.execute(f'select * from "{table}"'):
                for cell in row:
                    if isinstance(cell, str) and cell in wanted:
                        found.add(cell)
    except sqlite3.OperationalError:
        pass
    finally:
        con.close()
    return found


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


@pytest.mark.slow
async def test_14_header_timeout_spares_idle_keepalive_and_guards_the_next_head(
    stack: Callable[..., Stack], figures: dict[str, Any]
) -> None:
    s = stack("[server]\nheader_timeout_s = 2.0\n")
    host, port = s.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    try:
        writer.write(request)
        assert b" 200 " in await _read_response(reader)
        await asyncio.sleep(3.0)  # idle longer than the header timeout: still open
        writer.write(request)
        assert b" 200 " in await _read_response(reader)
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = b""
        for byte in request[:-2]:  # the next head, a byte every 0.5 s, never finished
            writer.write(bytes([byte]))
            try:
                chunk = await asyncio.wait_for(reader.read(1024), 0.5)
            except TimeoutError:
                continue
            answer += chunk
            if not chunk or b"408" in answer:
                break
        closed_after = loop.time() - started
    finally:
        writer.close()
    assert b"408" in answer and b'"header_timeout"' in answer, answer
    assert closed_after < 2.0 + 1.5, closed_after
    figures.update(idle_keepalive_kept="3 s", slow_next_head_closed_after_s=round(closed_after, 1))
