"""Learner fixtures: a :class:`Store` per backend (SQLite file, PostgreSQL schema).

``store`` is parametrized, so every test that takes it runs once on SQLite and once
on PostgreSQL. PostgreSQL is at ``$PROMPTLAB_TEST_POSTGRES`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``); when it is unreachable the
PostgreSQL half skips cleanly. Each test gets its own schema, so runs never collide.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from promptlab.learner.storage.store import Store

POSTGRES_URL = os.environ.get(
    "PROMPTLAB_TEST_POSTGRES", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _postgres_reachable() -> bool:
    url = make_url(POSTGRES_URL)
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=0.5):
            return True
    except OSError:
        return False


async def _postgres_store() -> Store:
    if not _postgres_reachable():
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    store = Store(POSTGRES_URL, schema=f"pl_test_{uuid.uuid4().hex[:12]}")
    try:
        await store.create()
    except Exception as exc:  # wrong user, no database: the half that needs it skips
        await store.close()
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} unusable: {exc}")
    return store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store_url_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(store_url_kind: str, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh, created store on each backend."""
    if store_url_kind == "sqlite":
        s = Store(f"sqlite+aiosqlite:///{tmp_path / 'learner.db'}")
        await s.create()
    else:
        s = await _postgres_store()
    try:
        yield s
    finally:
        if s.schema is not None:
            await s.drop()
        await s.close()


@pytest.fixture
async def make_store(store_url_kind: str, tmp_path: Path) -> AsyncIterator[object]:
    """A factory of further fresh stores on the same backend (for replay comparisons)."""
    made: list[Store] = []

    async def make() -> Store:
        if store_url_kind == "sqlite":
            s = Store(f"sqlite+aiosqlite:///{tmp_path / f'extra-{len(made)}.db'}")
            await s.create()
        else:
            s = await _postgres_store()
        made.append(s)
        return s

    yield make
    for s in made:
        if s.schema is not None:
            await s.drop()
        await s.close()
