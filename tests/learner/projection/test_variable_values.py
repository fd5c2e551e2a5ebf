"""The most used variable values per prompt, variant and period, against counts computed
by hand over a fixed event stream; replay, retention, the distinct-values bound."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from learner_factories import deliveries, execution, registered
from sqlalchemy import select

from promptlab.cli import main
from promptlab.events.models import BaseEvent
from promptlab.events.snapshots import VariableValues
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.replay import compare
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.periods import PeriodReport, period_analytics
from promptlab.learner.storage.store import Store

HOUR, DAY = 3600, 86400
LONG = "x" * 100


def stream() -> list[BaseEvent]:
    """T0 is Monday 2025-01-06 12:00 UTC.

    12:xx  a: x1 tone formal n 3; x2 formal n 5; x3 casual n 3; x5 nothing recorded
           b: x4 formal flag true
    13:xx  a: x6 casual; x7 casual
           b: x8 formal
    +1 day a: x9 a 100-character tone (recorded cut to 64)
    """
    return [
        registered(variant="a", champion=True),
        registered(variant="b"),
        execution("x1", seconds=10, variable_values={"tone": "formal", "n": 3}),
        execution("x2", seconds=20, variable_values={"tone": "formal", "n": 5}),
        execution("x3", seconds=30, variable_values={"tone": "casual", "n": 3}),
        execution("x4", variant="b", seconds=40, variable_values={"tone": "formal", "flag": True}),
        execution("x5", seconds=50),
        execution("x6", seconds=HOUR + 1, variable_values={"tone": "casual"}),
        execution("x7", seconds=HOUR + 2, variable_values={"tone": "casual"}),
        execution("x8", variant="b", seconds=HOUR + 3, variable_values={"tone": "formal"}),
        execution("x9", seconds=DAY + 1, variable_values={"tone": LONG}),
    ]


async def project(store: Store, events: list[BaseEvent], batch: int = 100, **options: Any) -> None:
    projection = Projection(store, consumer="learner", **options)
    await projection.load()
    items = deliveries(events)
    for i in range(0, len(items), batch):
        await projection.apply(items[i : i + batch])


def values(report: PeriodReport, hour: str, variant: str | None) -> dict[str, Any]:
    """``{variable: (recorded, [(value, count, change), ...], other)}`` of one cell."""
    if variant is None:
        cell = next(p for p in report.all_variants if p.start.isoformat()[:16] == hour)
        tops: list[VariableValues] = cell.top_values
    else:
        cell_ = next(
            p for p in report.periods if p.start.isoformat()[:16] == hour and p.variant == variant
        )
        tops = cell_.top_values
    return {
        v.variable: (v.recorded, [(c.value, c.count, c.change) for c in v.values], v.other)
        for v in tops
    }


async def test_top_values_per_hour_per_variant_and_for_all(store: Store) -> None:
    await project(store, stream())
    report = await period_analytics(store, "greet", interval="hour")
    assert values(report, "2025-01-06T12:00", "a") == {
        "n": (3, [(3, 2, None), (5, 1, None)], 0),  # no 11:00 period: no change
        "tone": (3, [("formal", 2, None), ("casual", 1, None)], 0),
    }
    assert values(report, "2025-01-06T12:00", "b") == {
        "flag": (1, [(True, 1, None)], 0),
        "tone": (1, [("formal", 1, None)], 0),
    }
    assert values(report, "2025-01-06T12:00", None) == {
        "flag": (1, [(True, 1, None)], 0),
        "n": (3, [(3, 2, None), (5, 1, None)], 0),
        "tone": (4, [("formal", 3, None), ("casual", 1, None)], 0),
    }
    # 13:00 against 12:00: casual 2 (was 1), formal 1 (was 3); n was not recorded.
    assert values(report, "2025-01-06T13:00", "a") == {"tone": (2, [("casual", 2, 1)], 0)}
    assert values(report, "2025-01-06T13:00", "b") == {"tone": (1, [("formal", 1, 0)], 0)}
    assert values(report, "2025-01-06T13:00", None) == {
        "tone": (3, [("casual", 2, 1), ("formal", 1, -2)], 0)
    }
    # The next day's 12:00 has no 11:00 before it; the long value was cut to 64.
    assert values(report, "2025-01-07T12:00", "a") == {"tone": (1, [("x" * 64, 1, None)], 0)}


async def test_top_values_per_day_with_a_limit(store: Store) -> None:
    await project(store, stream())
    report = await period_analytics(store, "greet", interval="day", top=1)
    assert values(report, "2025-01-06T00:00", "a") == {
        "n": (3, [(3, 2, None)], 1),
        "tone": (5, [("casual", 3, None)], 2),  # casual 3 before formal 2
    }
    assert values(report, "2025-01-06T00:00", None)["tone"] == (7, [("formal", 4, None)], 3)
    # The day before had no such value: the change counts from 0.
    assert values(report, "2025-01-07T00:00", "a") == {"tone": (1, [("x" * 64, 1, 1)], 0)}
    body = report.to_dict()
    assert body["all_variants"][0]["executions"] == 8
    assert body["periods"][0]["top_values"][1] == {
        "variable": "tone",
        "recorded": 5,
        "values": [{"value": "casual", "count": 3, "change": None}],
        "other": 2,
    }
    assert (await period_analytics(store, "greet", interval="day", top=0)).all_variants[
        0
    ].top_values == []


async def test_replay_in_other_batches_is_identical(store: Store, make_store: Any) -> None:
    await project(store, stream(), batch=3)
    other = await make_store()
    await project(other, stream(), batch=100)
    assert await compare(store, other) == []
    assert len(await store.dump(t.variable_values)) == 9


async def test_retention_keeps_the_value_counts(store: Store) -> None:
    """Half a day of retention: the first day's raw executions go once x9 moves the event
    clock; their values are still counted."""
    await project(store, stream(), batch=3, retention_days=0.5)
    async with store.engine.connect() as conn:
        left = [r[0] for r in await conn.execute(select(t.executions.c.execution_id))]
    assert left == ["x9"]
    report = await period_analytics(store, "greet", interval="day")
    assert values(report, "2025-01-06T00:00", None)["tone"] == (
        7,
        [("formal", 4, None), ("casual", 3, None)],
        0,
    )


async def test_distinct_values_per_hour_are_bounded_the_same_in_any_batches(
    store: Store, make_store: Any
) -> None:
    """55 distinct values in one hour: the first 50 get rows, the last 5 count as other,
    and a value seen before keeps counting under its own row after the bound is reached."""
    events: list[BaseEvent] = [registered(variant="a", champion=True)]
    events += [
        execution(f"v{i}", seconds=i, variable_values={"topic": f"t{i:02d}"}) for i in range(55)
    ]
    events.append(execution("again", seconds=60, variable_values={"topic": "t00"}))
    await project(store, events, batch=7)
    report = await period_analytics(store, "greet", interval="hour", top=2)
    assert values(report, "2025-01-06T12:00", "a") == {
        "topic": (56, [("t00", 2, None), ("t01", 1, None)], 53)
    }
    async with store.engine.connect() as conn:
        stored = [r[0] for r in await conn.execute(select(t.variable_values.c.value))]
    assert len(stored) == 51 and stored.count(t.OTHER_VALUE) == 1
    other = await make_store()
    await project(other, events, batch=1000)
    assert await compare(store, other) == []


async def test_a_new_version_takes_its_values_along(store: Store) -> None:
    """The old version's counts move to the retired arm ``a@v-a``, like its statistics."""
    events = [
        *stream()[:5],
        registered(variant="a", champion=True, version="v-a2", template="Hi {{ name }}"),
        execution("y1", seconds=60, version="v-a", variable_values={"tone": "late"}),
        execution("y2", seconds=70, version="v-a2", variable_values={"tone": "new"}),
    ]
    await project(store, events, batch=4)
    report = await period_analytics(store, "greet", interval="hour")
    old = values(report, "2025-01-06T12:00", "a@v-a")
    assert old["tone"] == (4, [("formal", 2, None), ("casual", 1, None), ("late", 1, None)], 0)
    assert values(report, "2025-01-06T12:00", "a") == {"tone": (1, [("new", 1, None)], 0)}


async def test_the_analytics_command_lists_the_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}")
    await store.create()
    await project(store, stream())
    await store.close()
    config = tmp_path / "promptlab.toml"
    config.write_text(f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path / "learner.db"}"\n')

    def run(*args: str) -> tuple[int, str]:
        code = main(["analytics", "greet", *args, "--config", str(config)])
        return code, capsys.readouterr().out

    code, out = await asyncio.to_thread(run, "--interval", "hour", "--to", "2025-01-07")
    assert code == 0
    lines = out.splitlines()
    start = lines.index("MOST USED VARIABLE VALUES  calls (change against the previous hour)")
    header, _rule, *rows = lines[start + 1 :]
    assert header.split() == ["PERIOD", "VARIANT", "VALUES"]
    assert rows == [
        "2025-01-06 12:00   (all)     flag: true 1 · n: 3 2, 5 1 · tone: formal 3, casual 1",
        "                   a         n: 3 2, 5 1 · tone: formal 2, casual 1",
        "                   b         flag: true 1 · tone: formal 1",
        "2025-01-06 13:00   (all)     tone: casual 2 (+1), formal 1 (-2)",
        "                   a         tone: casual 2 (+1)",
        "                   b         tone: formal 1",
    ]
    code, out = await asyncio.to_thread(run, "--interval", "day", "--top", "1", "--json")
    body = json.loads(out)
    assert body["all_variants"][0]["top_values"][2]["values"] == [
        {"value": "formal", "count": 4, "change": None}
    ]
    with pytest.raises(SystemExit):
        await asyncio.to_thread(run, "--top", "-1")


async def test_values_that_are_not_strings_booleans_or_numbers_are_skipped(store: Store) -> None:
    """A hand-made event's odd values cost nothing but themselves: the execution counts,
    nothing is dead-lettered, and ``1`` and ``true`` stay two values."""
    odd = {"a": [1], "b": None, "c": {"x": 1}, "d": "ok", "n" * 150: "long name", "e": 1}
    events = [
        registered(variant="a", champion=True),
        execution("x1", seconds=1, variable_values=odd),
        execution("x2", seconds=2, variable_values={"e": True, "f": float("nan")}),
    ]
    projection = Projection(store, consumer="learner")
    await projection.load()
    result = await projection.apply(deliveries(events))
    assert result.dead_letters == [] and result.applied == 3
    report = await period_analytics(store, "greet", interval="hour")
    assert values(report, "2025-01-06T12:00", "a") == {
        "d": (1, [("ok", 1, None)], 0),
        "e": (2, [(1, 1, None), (True, 1, None)], 0),
    }
    assert report.periods[0].executions == 2
