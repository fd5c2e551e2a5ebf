"""Analytics by period against figures computed by hand over a fixed event stream."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from learner_factories import T0, deliveries, execution, feedback, registered
from sqlalchemy import select

from promptlab.cli import main
from promptlab.events.models import BaseEvent
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.replay import compare
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.periods import PeriodFigures, period_analytics, period_start
from promptlab.learner.storage.store import Store

HOUR, DAY = 3600, 86400


def stream() -> list[BaseEvent]:
    """T0 is Monday 2025-01-06 12:00 UTC.

    12:xx  a: x1 100 ms u1 ok thumbs up; x2 300 ms u2 error (no feedback)
           b: x3 200 ms u1 ok thumbs up
    13:xx  a: x4 50 ms u1 ok thumbs up; x5 150 ms u1 ok (no feedback)
    +1 day a: x6 400 ms u3 ok thumbs down
    """
    return [
        registered(variant="a", champion=True),
        registered(variant="b"),
        execution("x1", variant="a", seconds=10, latency_ms=100.0, subject="u1"),
        execution("x2", variant="a", seconds=20, latency_ms=300.0, subject="u2", status="error"),
        execution("x3", variant="b", seconds=30, latency_ms=200.0, subject="u1"),
        feedback("x1", True, seconds=40),
        feedback("x3", True, seconds=41),
        execution("x4", variant="a", seconds=HOUR + 5, latency_ms=50.0, subject="u1"),
        execution("x5", variant="a", seconds=HOUR + 6, latency_ms=150.0, subject="u1"),
        feedback("x4", True, seconds=HOUR + 9),
        execution("x6", variant="a", seconds=DAY + 1, latency_ms=400.0, subject="u3"),
        feedback("x6", False, seconds=DAY + 2),
    ]


@pytest.fixture(name="loaded")
async def loaded_fixture(store: Store) -> Store:
    return await loaded(store)


async def loaded(store: Store) -> Store:
    projection = Projection(
        store, consumer="learner", rewards={"greet": RewardRule(feedback="thumbs_up")}
    )
    await projection.load()
    await projection.apply(deliveries(stream()))
    return store


def cells(periods: list[PeriodFigures]) -> dict[tuple[str, str], PeriodFigures]:
    return {(f.start.isoformat()[:16], f.variant): f for f in periods}


def figures(f: PeriodFigures, *names: str) -> tuple[Any, ...]:
    return tuple(getattr(f, n) for n in names)


async def test_hourly_figures_and_trends(loaded: Store) -> None:
    report = await period_analytics(loaded, "greet", interval="hour")
    got = cells(report.periods)
    assert list(got) == [
        ("2025-01-06T12:00", "a"),
        ("2025-01-06T12:00", "b"),
        ("2025-01-06T13:00", "a"),
        ("2025-01-07T12:00", "a"),
    ]
    a12 = got[("2025-01-06T12:00", "a")]
    names = ("executions", "error_rate", "success_rate", "quality", "satisfaction")
    assert figures(a12, *names) == (2, 0.5, 0.5, 1.0, 1.0)
    assert figures(a12, "unique_subjects", "latency_p50_ms", "latency_p95_ms") == (2, 100, 300)
    assert a12.tokens == 60 and a12.cost_usd == pytest.approx(0.002)
    assert all(v is None for v in a12.trends.values())  # no 11:00 period
    a13 = got[("2025-01-06T13:00", "a")]
    assert figures(a13, "executions", "error_rate", "quality", "unique_subjects") == (2, 0, 1, 1)
    assert figures(a13, "latency_p50_ms", "latency_p95_ms") == (50, 150)
    assert a13.trends["executions"] == 0
    assert a13.trends["error_rate"] == -0.5
    assert a13.trends["latency_p50_ms"] == -50 and a13.trends["latency_p95_ms"] == -150
    assert a13.trends["unique_subjects"] == -1 and a13.trends["quality"] == 0
    b12 = got[("2025-01-06T12:00", "b")]
    assert figures(b12, "executions", "latency_p50_ms", "quality") == (1, 200, 1.0)
    assert all(v is None for v in got[("2025-01-07T12:00", "a")].trends.values())


async def test_daily_figures_and_trends(loaded: Store) -> None:
    report = await period_analytics(loaded, "greet", interval="day")
    got = cells(report.periods)
    a6, a7 = got[("2025-01-06T00:00", "a")], got[("2025-01-07T00:00", "a")]
    names = ("executions", "rewarded", "quality", "satisfaction", "error_rate")
    assert figures(a6, *names) == (4, 2, 1.0, 1.0, 0.25)
    # latencies 50, 100, 150, 300: nearest rank 2 and 4
    assert figures(a6, "unique_subjects", "latency_p50_ms", "latency_p95_ms") == (2, 100, 300)
    assert figures(a7, *names) == (1, 1, 0.0, 0.0, 0.0)
    assert a7.trends == {
        "executions": -3,
        "unique_subjects": -1,
        "latency_p50_ms": 300,
        "latency_p95_ms": 100,
        "success_rate": 0.25,
        "error_rate": -0.25,
        "tokens": -90,
        "cost_usd": pytest.approx(-0.003),
        "quality": -1.0,
        "satisfaction": -1.0,
    }
    assert got[("2025-01-06T00:00", "b")].executions == 1


async def test_a_range_and_weeks(loaded: Store) -> None:
    week = await period_analytics(loaded, "greet", interval="week")
    assert [(f.start.date().isoformat(), f.variant, f.executions) for f in week.periods] == [
        ("2025-01-06", "a", 5),
        ("2025-01-06", "b", 1),
    ]
    # from 13:30 (rounded down to 13:00) to the end of Jan 6
    report = await period_analytics(
        loaded,
        "greet",
        interval="hour",
        start=datetime(2025, 1, 6, 13, 30, tzinfo=UTC),
        end=datetime(2025, 1, 7, tzinfo=UTC),
    )
    assert [(f.start.hour, f.variant, f.executions) for f in report.periods] == [(13, "a", 2)]
    assert report.to_dict()["periods"][0]["latency_p95_ms"] == 150


def test_period_starts() -> None:
    assert period_start(T0, "hour") == T0
    assert period_start(datetime(2025, 1, 9, 5, 7, tzinfo=UTC), "week").isoformat() == (
        "2025-01-06T00:00:00+00:00"
    )
    assert period_start(datetime(2025, 2, 28, 23, 59, tzinfo=UTC), "month").day == 1


async def test_retention_deletes_raw_executions_and_keeps_the_counters(
    store: Store, make_store: Any
) -> None:
    """With 0.5 days of retention, the day-old calls lose their raw rows once x6 (a day
    later) moves the event clock: counters stay, percentiles and subjects become unknown;
    a replay in other batches deletes the same rows."""
    rules = {"greet": RewardRule(feedback="thumbs_up")}

    async def project(target: Store, batch: int) -> None:
        projection = Projection(target, consumer="learner", rewards=rules, retention_days=0.5)
        await projection.load()
        items = deliveries(stream())
        for i in range(0, len(items), batch):
            await projection.apply(items[i : i + batch])

    await project(store, batch=3)
    async with store.engine.connect() as conn:
        left = sorted(r[0] for r in await conn.execute(select(t.executions.c.execution_id)))
    assert left == ["x6"]
    report = await period_analytics(store, "greet", interval="day")
    a6 = cells(report.periods)[("2025-01-06T00:00", "a")]
    assert figures(a6, "executions", "quality", "error_rate", "raw_executions") == (4, 1.0, 0.25, 0)
    assert figures(a6, "latency_p50_ms", "unique_subjects") == (None, None)
    assert (await store.arm_totals("greet"))["a"].executions == 5  # lifetime aggregates kept
    other = await make_store()
    await project(other, batch=50)
    assert await compare(store, other) == []


async def test_feedback_after_retention_counts_alike_in_any_batch_sizes(
    store: Store, make_store: Any
) -> None:
    """Feedback for a call older than the retention: in one batch the call is still in
    memory, in small batches its row is already deleted; either way it waits as pending
    (and is dropped when its wait is over), so a replay rebuilds the same tables."""
    rules = {"greet": RewardRule(feedback="thumbs_up")}
    events: list[BaseEvent] = [
        registered(variant="a", champion=True),
        execution("old", variant="a", seconds=0),
        execution("new", variant="a", seconds=7200),  # moves the clock 2 h on
        feedback("old", value=True, seconds=7201),
        feedback("new", value=True, seconds=7202),
    ]

    async def project(target: Store, batch: int) -> None:
        projection = Projection(target, consumer="learner", rewards=rules, retention_days=1 / 24)
        await projection.load()
        items = deliveries(events)
        for i in range(0, len(items), batch):
            await projection.apply(items[i : i + batch])

    await project(store, batch=1)
    totals = (await store.arm_totals("greet"))["a"]
    assert (totals.executions, totals.rewarded) == (2, 1)  # only "new" is rewarded
    other = await make_store()
    await project(other, batch=len(events))
    assert await compare(store, other) == []


async def test_the_analytics_command_prints_the_same_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}")
    await store.create()
    await loaded(store)
    await store.close()
    config = tmp_path / "promptlab.toml"
    config.write_text(f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path / "learner.db"}"\n')

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["analytics", "greet", *args, "--config", str(config)])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await asyncio.to_thread(run, "--interval", "hour", "--json")
    assert code == 0
    body = json.loads(out)
    assert [(p["start"][:16], p["variant"], p["executions"]) for p in body["periods"]] == [
        ("2025-01-06T12:00", "a", 2),
        ("2025-01-06T12:00", "b", 1),
        ("2025-01-06T13:00", "a", 2),
        ("2025-01-07T12:00", "a", 1),
    ]
    code, out, _ = await asyncio.to_thread(run, "--from", "2025-01-07")
    assert code == 0 and "2025-01-07 00:00" in out and "2025-01-06" not in out
    assert "calls -3" not in out  # the previous day is outside the range: no trend
    code, out, _ = await asyncio.to_thread(run)
    assert "calls -3, quality -1.000, errors -25.0%" in out
    code, _, err = await asyncio.to_thread(run, "--from", "2030-01-01")
    assert code == 1 and "no executions" in err
