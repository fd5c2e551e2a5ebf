"""The store migrates in place: a new database is created at the newest revision, and a
store written by a version from before migrations (no ``alembic_version``, columns that
were added at start-up missing) keeps its rows and reaches the newest revision."""

from __future__ import annotations

import os
import sqlite3
import uuid
from importlib.resources import files
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from promptlab.learner.storage import schema as t
from promptlab.learner.storage.migrations import BASELINE, BASELINE_TABLES, current_revision
from promptlab.learner.storage.store import Store


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(files("promptlab.learner.storage.migrations")))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def _revision(store: Store) -> str | None:
    async with store.engine.connect() as conn:
        return await conn.run_sync(current_revision, store.schema)


async def test_a_new_store_is_created_at_the_newest_revision(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    await store.create()
    await store.create()  # idempotent
    assert await _revision(store) == _head()
    await store.close()


def _legacy_sqlite(path: Path) -> None:
    """A store as a version before migrations left it: every baseline table, created
    by that version's create_all, without the columns it added at start-up later."""
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        t.metadata.create_all(conn, tables=[t.metadata.tables[n] for n in BASELINE_TABLES])
        conn.execute(text("ALTER TABLE variants DROP COLUMN lifecycle"))
        conn.execute(text("INSERT INTO projection_position VALUES ('learner', 42)"))
    engine.dispose()


async def test_a_store_from_before_migrations_upgrades_in_place(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _legacy_sqlite(db)
    store = Store(f"sqlite+aiosqlite:///{db}")
    await store.create()
    assert await _revision(store) == _head()
    await store.close()
    with sqlite3.connect(db) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(variants)")}
        assert "lifecycle" in columns
        assert conn.execute("SELECT sequence FROM projection_position").fetchone()[0] == 42
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == _head()


POSTGRES_URL = os.environ.get(
    "PROMPTLAB_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


async def _postgres(prefix: str) -> Store:
    """A store in a new schema of the test PostgreSQL, or a clean skip without one."""
    store = Store(POSTGRES_URL, schema=f"{prefix}_{uuid.uuid4().hex[:12]}")
    try:
        async with store.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # no server, wrong user: skip cleanly
        await store.close()
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} unusable: {exc}")
    return store


@pytest.mark.postgres
async def test_a_postgresql_store_from_before_migrations_upgrades_in_place() -> None:
    store = await _postgres("pl_legacy")
    schema = store.schema
    async with store.engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(
            lambda c: t.metadata.create_all(
                c, tables=[t.metadata.tables[n] for n in BASELINE_TABLES]
            )
        )
        await conn.execute(text(f'ALTER TABLE "{schema}".variants DROP COLUMN lifecycle'))
    assert await _revision(store) is None
    await store.create()
    assert await _revision(store) == _head()
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = :s AND table_name = 'variants'"
            ),
            {"s": schema},
        )
        assert "lifecycle" in {r[0] for r in rows}
    assert BASELINE <= _head()
    await store.drop()
    await store.close()


_OPEN = """
import asyncio, sys, time
from promptlab.learner.storage.store import Store

async def main(url, schema, start):
    store = Store(url, schema=schema or None)
    await asyncio.sleep(max(0.0, start - time.time()))  # every process at the same moment
    try:
        await store.create()
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


def _open_at_once(url: str, schema: str = "", processes: int = 6) -> list[str]:
    """Open one new store from ``processes`` processes at the same instant (the learner
    starting while ``promptlab stats`` and others read); the errors they print."""
    import subprocess
    import sys
    import time

    start = str(time.time() + 3.0)  # after every interpreter has imported the store
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, url, schema, start],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    return [err[-600:] for p in procs if (err := p.communicate(timeout=120)[1]) and p.returncode]


async def test_processes_opening_one_new_sqlite_store_at_once_all_succeed(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    assert _open_at_once(f"sqlite+aiosqlite:///{db}") == []
    store = Store(f"sqlite+aiosqlite:///{db}")
    assert await _revision(store) == _head()
    await store.close()


@pytest.mark.postgres
async def test_processes_opening_one_new_postgresql_store_at_once_all_succeed() -> None:
    store = await _postgres("pl_race")
    try:
        assert _open_at_once(POSTGRES_URL, store.schema or "") == []
        assert await _revision(store) == _head()
    finally:
        await store.drop()
        await store.close()
