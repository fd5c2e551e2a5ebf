"""``GET /admin/prompts/{id}/analytics``: the learner's analytics by period through the
admin API (a real SQLite store projected from events, served by the real sidecar)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from conftest import MakeSidecar

from promptlab.events.bus import Delivery
from promptlab.events.models import BaseEvent, ExecutionCompleted, VariantRegistered, encode
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.storage.history import variant_history
from promptlab.learner.storage.periods import period_analytics
from promptlab.learner.storage.store import Store

T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


async def call(method: str, url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(method, url) as resp:
        return resp.status, await resp.json()


def _events() -> list[BaseEvent]:
    events: list[BaseEvent] = [
        VariantRegistered(
            prompt_id="summarize",
            variant="v1",
            version="h1",
            model="fake/a",
            template="x",
            champion=True,
            occurred_at=T0,
        )
    ]
    for i, (hours, latency) in enumerate([(0, 100.0), (0, 300.0), (1, 50.0)]):
        events.append(
            ExecutionCompleted(
                execution_id=f"x{i}",
                prompt_id="summarize",
                variant="v1",
                model="fake/a",
                provider="fake",
                latency_ms=latency,
                input_tokens=1,
                output_tokens=2,
                cost_usd=0.0,
                subject=f"u{i}",
                occurred_at=T0 + timedelta(hours=hours, minutes=i),
            )
        )
    return events


async def _source(
    store: Store, prompt_id: str, interval: str, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    report = await period_analytics(store, prompt_id, interval=interval, start=start, end=end)  # type: ignore[arg-type]
    return report.to_dict()


async def test_admin_analytics_by_hour(make_sidecar: MakeSidecar, tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}")
    await store.create()
    try:
        projection = Projection(store, consumer="learner")
        await projection.load()
        await projection.apply(
            [Delivery(sequence=i + 1, event=e, data=encode(e)) for i, e in enumerate(_events())]
        )
        sidecar = await make_sidecar(bus="memory", analytics=functools.partial(_source, store))
        url = sidecar.url + "/admin/prompts/summarize/analytics"
        status, body = await call("GET", url + "?interval=hour")
        assert status == 200 and body["interval"] == "hour"
        rows = [(p["start"][11:16], p["executions"], p["latency_p95_ms"]) for p in body["periods"]]
        assert rows == [("12:00", 2, 300.0), ("13:00", 1, 50.0)]
        assert body["periods"][1]["trends"]["executions"] == -1
        status, body = await call("GET", url + "?interval=day&from=2025-01-06T13:00")
        assert status == 200 and [p["executions"] for p in body["periods"]] == [3]  # day start
        assert (await call("GET", url + "?interval=year"))[0] == 400
        assert (await call("GET", url + "?from=yesterday"))[0] == 400
        missing = sidecar.url + "/admin/prompts/nope/analytics"
        assert (await call("GET", missing))[0] == 404
    finally:
        await store.close()


async def test_admin_analytics_without_a_learner_database_is_503(
    make_sidecar: MakeSidecar,
) -> None:
    sidecar = await make_sidecar(bus="memory")
    status, body = await call("GET", sidecar.url + "/admin/prompts/summarize/analytics")
    assert status == 503 and body["error"]["code"] == "analytics_unavailable"


async def test_admin_history_after_a_variant_replaced_through_admin(
    make_sidecar: MakeSidecar, tmp_path: Path
) -> None:
    """Variants registered through /admin (and replaced) reach the history as versions
    with origin ``api``; the history endpoint serves them."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}")
    await store.create()
    try:
        source = functools.partial(_history, store)
        sidecar = await make_sidecar(bus="memory", history=source)
        url = sidecar.url + "/admin/prompts/summarize/variants"
        body = {"name": "v3", "model": "fake/model-c", "template": "Explain {{ code }}"}
        async with aiohttp.ClientSession() as session:
            for extra in ({}, {"template": "Explain briefly {{ code }}", "replace": True}):
                async with session.post(url, json={**body, **extra}) as resp:
                    assert resp.status == 201
        events = await sidecar.events("variant.registered")
        projection = Projection(store, consumer="learner")
        await projection.load()
        await projection.apply(
            [Delivery(sequence=i + 1, event=e, data=encode(e)) for i, e in enumerate(events)]
        )
        status, answer = await call(
            "GET", sidecar.url + "/admin/prompts/summarize/history?variant=v3"
        )
        assert status == 200
        versions = answer["versions"]
        assert [(v["number"], v["origin"], v["status"]) for v in versions] == [
            (1, "api", "replaced"),
            (2, "api", "active"),
        ]
        assert versions[1]["template"] == "Explain briefly {{ code }}"
    finally:
        await store.close()


async def _history(store: Store, prompt_id: str, variant: str | None) -> dict[str, Any]:
    entries = await variant_history(store, prompt_id, variant)
    return {"prompt_id": prompt_id, "versions": [e.to_dict() for e in entries]}
