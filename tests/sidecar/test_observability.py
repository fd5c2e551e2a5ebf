"""What an operator watches: the call's span joins the caller's trace, and /metrics
shows the event pipeline and the learner's backlog."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import prom
import pytest
from conftest import MakeSidecar
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from promptlab.events.memory import MemoryBus
from promptlab.events.subjects import Subject
from promptlab.sidecar import keys

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


class Collector:
    """An OTLP/HTTP trace collector on loopback (in a thread: the exporter is synchronous)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                collector.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[object]:
        out = []
        for _, body in self.requests:
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    out.extend(scope.spans)
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


async def test_traceparent_makes_the_call_a_child_of_the_callers_span(
    make_sidecar: MakeSidecar, collector: Collector
) -> None:
    sidecar = await make_sidecar(
        telemetry={
            "exporter": "otlp",
            "otlp_endpoint": collector.url,
            "otlp_headers": {"x-collector-key": "collector-secret"},
        }
    )
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
    await sidecar.client().chat.completions.create(
        model="promptlab/summarize",
        messages=[],
        extra_body={"promptlab": {"variables": {"code": "x"}}},
        extra_headers={"traceparent": traceparent},
    )
    # A call without the header starts a trace of its own.
    await sidecar.client().chat.completions.create(
        model="promptlab/summarize",
        messages=[],
        extra_body={"promptlab": {"variables": {"code": "y"}}},
    )
    await asyncio.to_thread(sidecar.app[keys.TELEMETRY].shutdown)  # exports what is buffered

    spans = collector.spans()
    roots = [s for s in spans if s.name.startswith("chat ")]  # type: ignore[attr-defined]
    assert len(roots) == 2
    joined = [s for s in roots if s.trace_id.hex() == TRACE_ID]  # type: ignore[attr-defined]
    assert len(joined) == 1
    assert joined[0].parent_span_id.hex() == PARENT_SPAN_ID  # type: ignore[attr-defined]
    other = next(s for s in roots if s is not joined[0])
    assert other.trace_id.hex() != TRACE_ID and not other.parent_span_id  # type: ignore[attr-defined]
    # The children of the joined call (route, render, upstream...) are in the same trace.
    children = [s for s in spans if s.parent_span_id == joined[0].span_id]  # type: ignore[attr-defined]
    assert children and all(s.trace_id.hex() == TRACE_ID for s in children)  # type: ignore[attr-defined]
    assert all(h.get("x-collector-key") == "collector-secret" for h, _ in collector.requests)


async def _metrics(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


async def test_metrics_show_learner_lag_and_dead_letters(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar()
    text = await _metrics(sidecar.url)
    assert prom.value(text, "promptlab_learner_lag_events") == -1  # no learner consumer yet
    consumer = await sidecar.bus.consumer("promptlab-learner")
    for code in ("a", "b", "c"):
        await sidecar.client().chat.completions.create(
            model="promptlab/summarize",
            messages=[],
            extra_body={"promptlab": {"variables": {"code": code}}},
        )
    events = await sidecar.wait_events("execution.completed", 3)
    assert len(events) == 3
    backlog = await sidecar.bus.last_sequence()  # the announced variants count too
    text = await _metrics(sidecar.url)
    assert prom.value(text, "promptlab_learner_lag_events") == backlog
    delivered = await consumer.fetch(batch=backlog, timeout=2.0)
    text = await _metrics(sidecar.url)
    assert prom.value(text, "promptlab_learner_lag_events") == backlog  # delivered, not acked
    for d in delivered:
        await d.ack()
    deadline = asyncio.get_running_loop().time() + 5.0
    while prom.value(text, "promptlab_learner_lag_events") != 0:
        assert asyncio.get_running_loop().time() < deadline, text
        await asyncio.sleep(0.05)
        text = await _metrics(sidecar.url)
    assert prom.value(text, "promptlab_dead_letters") == 0
    await sidecar.bus.publish_raw(Subject.DEAD_LETTER.value, b"not an event", {})
    text = await _metrics(sidecar.url)
    assert prom.value(text, "promptlab_dead_letters") == 1
    assert prom.value(text, "promptlab_event_queue_depth", worker="0") == 0
    assert prom.value(text, "promptlab_outbox_events", worker="0") == 0
    await consumer.close()


async def test_metrics_show_publish_failures_and_the_outbox(make_sidecar: MakeSidecar) -> None:
    sidecar = await make_sidecar(bus="memory")
    bus = sidecar.bus
    assert isinstance(bus, MemoryBus)
    bus.set_available(False)
    await sidecar.client().chat.completions.create(
        model="promptlab/summarize",
        messages=[],
        extra_body={"promptlab": {"variables": {"code": "x"}}},
    )
    deadline = asyncio.get_running_loop().time() + 5.0
    while True:
        text = await _metrics(sidecar.url)
        if (prom.value(text, "promptlab_publish_failures_total", worker="0") or 0) >= 1:
            break
        assert asyncio.get_running_loop().time() < deadline, text
        await asyncio.sleep(0.05)
    assert (prom.value(text, "promptlab_outbox_events", worker="0") or 0) >= 1
    assert (prom.value(text, "promptlab_events_spilled_total", worker="0") or 0) >= 1
    assert (
        prom.value(text, "promptlab_calls_total", prompt="summarize", variant="v1", status="ok")
        == 1
    )
    bus.set_available(True)
