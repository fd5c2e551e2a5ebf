"""The production examples table: captured calls, their rewards and corrections, the
per-prompt cap and the retention, identical whatever the batch sizes (SQLite and
PostgreSQL), read back through ``learner.examples.read_examples``."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from learner_factories import at, correction, deliveries, execution, feedback, registered

from promptlab.events.models import BaseEvent, CapturedContent, FeedbackReceived
from promptlab.learner.examples import read_examples
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.replay import compare
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.store import Store

RULES = {"greet": RewardRule(feedback="thumbs_up")}


def captured(execution_id: str, name: str, answer: str, **kw: Any) -> Any:
    content = CapturedContent(
        messages=[{"role": "user", "content": f"Hello {name}"}],
        output=answer,
        variables={"name": name},
    )
    return execution(execution_id, content=content, **kw)


def stream() -> list[BaseEvent]:
    """x1..x6 captured (x4 by variant b), x7 not captured, x8 failed; ratings, a
    correction before its call arrives (x6), a correction of a call not captured (x7),
    a rating after a correction (x2) and a repeated rating (x3)."""
    return [
        registered(variant="a", champion=True),
        registered(variant="b"),
        captured("x1", "Ada", "Hi Ada", seconds=10),
        captured("x2", "Bob", "Hi Rob", seconds=20, subject="user-2"),
        feedback("x1", True, seconds=21),
        feedback("x2", False, seconds=22),
        captured("x3", "Cy", "Hello Cy", seconds=30),
        correction("x2", "Hi Bob", seconds=31, comment="wrong name"),
        feedback("x2", True, seconds=32),  # a rating after a correction changes nothing
        feedback("x3", False, seconds=33),
        feedback("x3", 1.0, seconds=34),  # repeated: "last" replaces it
        captured("x4", "Di", "Hey Di", variant="b", seconds=40),
        correction("x6", "Hi Eve", seconds=45),  # before its call: waits
        captured("x6", "Eve", "Hi Ev", seconds=50),
        execution("x7", seconds=60),  # capture off for this call
        correction("x7", "anything", seconds=61),
        captured("x8", "Fay", "", seconds=70, status="error"),
        FeedbackReceived(
            execution_id="x4", name="thumbs_up", value=0.0, comment="terse", occurred_at=at(71)
        ),
    ]


async def project(
    store: Store, events: list[BaseEvent], batch: int = 100, **options: Any
) -> Projection:
    projection = Projection(store, consumer="learner", rewards=RULES, **options)
    await projection.load()
    items = deliveries(events)
    for i in range(0, len(items), batch):
        await projection.apply(items[i : i + batch])
    return projection


async def test_calls_ratings_and_corrections_become_examples(store: Store) -> None:
    await project(store, stream())
    rows = {e.id: e for e in await read_examples(store, "greet")}
    assert sorted(rows) == ["x1", "x2", "x3", "x4", "x6"]  # x7 not captured, x8 failed
    x1, x2, x3, x4, x6 = (rows[k] for k in ("x1", "x2", "x3", "x4", "x6"))
    assert (x1.variables, x1.answer, x1.reward, x1.source) == (
        {"name": "Ada"},
        "Hi Ada",
        1.0,
        "call",
    )
    assert x1.created_at == at(10)
    assert (x2.answer, x2.source, x2.reward, x2.replaced_answer, x2.comment) == (
        "Hi Bob",
        "correction",
        1.0,
        "Hi Rob",
        "wrong name",
    )
    assert x2.subject_hash is not None and x2.subject_hash != x1.subject_hash
    assert "user" not in x2.subject_hash
    assert x3.reward == 1.0  # the repeated rating replaced 0.0
    assert (x4.variant, x4.reward, x4.comment) == ("b", 0.0, "terse")
    assert (x6.answer, x6.source, x6.replaced_answer) == ("Hi Eve", "correction", "Hi Ev")
    # A correction is never a reward: variant a's arm counts x1, x2 (its last rating),
    # x3; the demonstration feedback added nothing.
    stats = await store.arm_totals("greet")
    assert stats["a"].rewarded == 3


async def test_read_filters(store: Store) -> None:
    await project(store, stream())

    async def ids(**kw: Any) -> list[str]:
        return [e.id for e in await read_examples(store, "greet", **kw)]

    assert await ids() == ["x6", "x4", "x3", "x2", "x1"]  # newest first
    assert await ids(order="oldest", limit=2) == ["x1", "x2"]
    assert await ids(min_reward=1.0) == ["x6", "x3", "x2", "x1"]
    assert await ids(max_reward=0.5) == ["x4"]
    assert await ids(variant="b") == ["x4"]
    assert await ids(since=at(20), until=at(40)) == ["x3", "x2"]
    assert await ids(source="correction") == ["x6", "x2"]
    assert await ids(rated=False) == []
    assert await read_examples(store, "other") == []


@pytest.mark.parametrize("batch", [1, 2, 3, 7])
async def test_replay_rebuilds_the_table_in_any_batch_sizes(
    store: Store, make_store: Any, batch: int
) -> None:
    events = stream()
    await project(store, events, batch=100, examples_cap=lambda _p: 3)
    other = await make_store()
    await project(other, events, batch=batch, examples_cap=lambda _p: 3)
    assert await compare(store, other) == []
    assert len(await store.dump(t.examples)) == 3


async def test_the_cap_keeps_the_newest_and_the_retention_deletes_old_ones(store: Store) -> None:
    await project(store, stream(), batch=2, examples_cap=lambda _p: 2)
    assert [e.id for e in await read_examples(store, "greet")] == ["x6", "x4"]
    late = [captured("x9", "Gus", "Hi Gus", seconds=3 * 86400)]
    await project(store, stream() + late, batch=4, retention_days=1.0)
    # the first projection's position skips what it saw; the new call moves the clock
    # three days on and everything older than one day goes
    assert [e.id for e in await read_examples(store, "greet")] == ["x9"]


async def test_a_store_at_the_baseline_revision_gains_the_examples(tmp_path: Path) -> None:
    db = tmp_path / "baseline.db"
    store = Store(f"sqlite+aiosqlite:///{db}")
    await store.create()
    await store.close()
    with sqlite3.connect(db) as conn:  # back to revision 0001, as a store written before
        conn.execute("DROP TABLE examples")
        conn.execute("ALTER TABLE pending_feedback DROP COLUMN text")
        conn.execute("ALTER TABLE pending_feedback DROP COLUMN comment")
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    store = Store(f"sqlite+aiosqlite:///{db}")
    await store.create()
    try:
        await project(store, stream())
        assert len(await read_examples(store, "greet")) == 5
    finally:
        await store.close()
    with sqlite3.connect(db) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(pending_feedback)")}
        assert {"text", "comment"} <= columns
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "0002"


@pytest.mark.parametrize("batch", [1, 4])
async def test_a_new_version_does_not_rename_examples(
    store: Store, make_store: Any, batch: int
) -> None:
    events = [
        *stream(),
        registered(variant="a", version="v-a2", template="Hi {{ name }}", occurred_at=at(80)),
        captured("y1", "Hal", "Hi Hal", version="v-a2", seconds=90),
        captured("y0", "Ida", "Hello Ida", version="v-a", seconds=91),  # the old version, late
        captured("x1", "Ada", "Hi Ada", seconds=10),  # published again, then rated again
        feedback("x1", False, seconds=92),
    ]
    await project(store, events, batch=100)
    other = await make_store()
    await project(other, events, batch=batch)
    assert await compare(store, other) == []
    rows = {e.id: e for e in await read_examples(store, "greet")}
    assert (rows["y1"].variant, rows["y1"].version) == ("a", "v-a2")
    assert (rows["y0"].variant, rows["y0"].version) == ("a", "v-a")
    assert (rows["x1"].variant, rows["x1"].version, rows["x1"].reward) == ("a", None, 0.0)
