"""Version history and diffs after edits from a prompt file, the admin API and a mutation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from learner_factories import deliveries, execution, feedback, registered

from promptlab.cli import main
from promptlab.events.models import BaseEvent
from promptlab.learner.projection.reward import RewardRule
from promptlab.learner.projection.transaction import Projection
from promptlab.learner.replay import compare
from promptlab.learner.storage.history import diff_versions, find_version, variant_history
from promptlab.learner.storage.store import Store

MIN = 60


def stream() -> list[BaseEvent]:
    """b: v1 from the file, v2 from the admin API 10 min later, v3 bred by mutation 10
    min after that; each version gets calls (and thumbs) while it is the current one."""
    return [
        registered(variant="a", champion=True),
        registered(variant="b", template="Hello {{ name }}", params={"temperature": 0.2}),
        execution("x1", variant="b", seconds=1 * MIN),
        feedback("x1", True, seconds=1 * MIN + 5),
        execution("x2", variant="b", seconds=2 * MIN),
        feedback("x2", False, seconds=2 * MIN + 5),
        registered(
            variant="b",
            version="v-b2",
            template="Hello {{ name }}!\nBe brief.",
            params={"temperature": 0.2},
            origin="api",
            occurred_at=registered().occurred_at.replace(minute=10),
        ),
        execution("x3", variant="b", seconds=11 * MIN),
        feedback("x3", True, seconds=11 * MIN + 5),
        registered(
            variant="b",
            version="v-b3",
            template="Hello {{ name }}!\nBe brief.",
            params={"temperature": 0.7},
            origin="mutation",
            parent="b",
            strategy="temperature",
            occurred_at=registered().occurred_at.replace(minute=20),
        ),
        registered(variant="b", version="v-b3", origin="mutation"),  # again: nothing new
    ]


async def project(store: Store, batch: int = 100, events: list[BaseEvent] | None = None) -> None:
    projection = Projection(
        store, consumer="learner", rewards={"greet": RewardRule(feedback="thumbs_up")}
    )
    await projection.load()
    items = deliveries(events if events is not None else stream())
    for i in range(0, len(items), batch):
        await projection.apply(items[i : i + batch])


@pytest.mark.asyncio
async def test_every_version_with_origin_parent_status_and_how_it_ran(store: Store) -> None:
    await project(store)
    entries = await variant_history(store, "greet", "b")
    got = [
        (e.number, e.version, e.origin, e.parent, e.status, e.executions, e.reward_mean)
        for e in entries
    ]
    assert got == [
        (1, "v-b", "config", None, "replaced", 2, 0.5),
        (2, "v-b2", "api", None, "replaced", 1, 1.0),
        (3, "v-b3", "mutation", "b", "active", 0, None),
    ]
    assert [e.variant for e in await variant_history(store, "greet")] == ["a", "b", "b", "b"]
    text = diff_versions(find_version(entries, "b", "1"), find_version(entries, "b", "v-b3"))
    assert "-Hello {{ name }}\n+Hello {{ name }}!\n+Be brief." in text
    assert '-  "temperature": 0.2\n+  "temperature": 0.7' in text
    assert text.startswith("--- b v1 (v-b)\n+++ b v3 (v-b3)")
    assert diff_versions(entries[1], entries[1]) == ""


@pytest.mark.asyncio
async def test_history_is_rebuilt_identically_in_other_batches(
    store: Store, make_store: object
) -> None:
    events = stream()  # the same event ids for both
    await project(store, batch=100, events=events)
    other = await make_store()  # type: ignore[operator]
    await project(other, batch=2, events=events)
    assert await compare(store, other) == []


async def test_history_and_diff_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}")
    await store.create()
    await project(store)
    await store.close()
    config = tmp_path / "promptlab.toml"
    config.write_text(f'[storage]\nurl = "sqlite+aiosqlite:///{tmp_path / "learner.db"}"\n')

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["prompts", *args, "--config", str(config)])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await asyncio.to_thread(run, "history", "greet", "b")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 5  # headings, rule, three versions
    assert lines[0].split()[-2:] == ["CALLS", "REWARD"]  # executions, not `stats`' rewarded N
    assert lines[3].split()[:6] == ["b", "2", "v-b2", "2025-01-06", "12:10", "api"]
    assert lines[4].split()[5:8] == ["mutation", "b", "active"]
    code, out, _ = await asyncio.to_thread(run, "diff", "greet", "b", "2", "3")
    assert code == 0 and '+  "temperature": 0.7' in out
    assert not [line for line in out.splitlines() if line.startswith(("+Hello", "-Hello"))]
    code, _, err = await asyncio.to_thread(run, "diff", "greet", "b", "1", "9")
    assert code == 1 and "no version '9'" in err and "1=v-b" in err
