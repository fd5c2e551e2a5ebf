"""The single-active-learner lease: one learner applies the stream to a store at a time.

Two learners on one durable consumer and one database double-count and leave feedback
stuck (issue 10), so a learner holds an exclusive lock *of the store* while it is
active; any other learner for the same store stands by and takes over when the lock is
free. The lock lives in the database's own world, so it covers exactly "one store":

* **SQLite**: ``flock(LOCK_EX)`` on ``<database>.lease`` next to the database file. The
  kernel releases it when the holding process exits or dies (SIGKILL included).
* **PostgreSQL**: ``pg_try_advisory_lock`` on a session of its own, keyed by database and
  schema. PostgreSQL releases it when that session ends; the session asks for TCP
  keepalives of about ``lease_s`` so a vanished host loses it too. The holder checks its
  session every ``lease_s / 5`` seconds and steps down when it has lost it.
* an in-memory SQLite database has no other user: the lease is always granted.

A standby tries every ``lease_s / 5`` seconds, so it takes over within ``lease_s`` of
the active learner's death. The holder's name, host, pid and start time are written to
the ``learner_lease`` table (not a projection: replay ignores it) for ``promptlab
stats``; whether the lock is *held* is always asked of the lock itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from promptlab.learner.errors import StoreUnavailable, map_store_errors
from promptlab.learner.storage import schema as t
from promptlab.learner.storage.store import Store

log = logging.getLogger(__name__)

LeaseState = Literal["active", "standby", "free", "unknown"]


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """What ``promptlab stats`` says about the lease of a store."""

    state: LeaseState
    """``active``: some learner holds it; ``free``: no learner is active."""
    holder: str | None = None
    host: str | None = None
    pid: int | None = None
    acquired_ms: int | None = None
    backend: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "holder": self.holder,
            "host": self.host,
            "pid": self.pid,
            "acquired_ms": self.acquired_ms,
            "backend": self.backend,
        }

    def describe(self) -> str:
        if self.state == "free":
            return f"learner lease: free ({self.backend}): no learner is active on this store"
        if self.state != "active":
            return f"learner lease: {self.state} ({self.backend})"
        since = ""
        if self.acquired_ms is not None:
            since = time.strftime(
                " since %Y-%m-%d %H:%M:%S UTC", time.gmtime(self.acquired_ms / 1e3)
            )
        who = f"{self.host} pid {self.pid}" if self.host else "an unknown learner"
        return f"learner lease: active, held by {who}{since} ({self.backend})"


class Lease:
    """The exclusive right of one learner to apply the stream to ``store``."""

    def __init__(self, store: Store, *, lease_s: float = 10.0, name: str = "learner") -> None:
        self.store = store
        self.lease_s = lease_s
        self.name = name
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.held = False
        self._fd: int | None = None
        self._conn: AsyncConnection | None = None
        self._last_check = 0.0

    @property
    def retry_s(self) -> float:
        """How often a standby tries (and the holder checks): a fifth of ``lease_s``."""
        return max(self.lease_s / 5, 0.05)

    @property
    def backend(self) -> str:
        if self.store.dialect == "postgresql":
            return "PostgreSQL advisory lock"
        path = lock_path(self.store)
        return "always granted (in-memory SQLite)" if path is None else f"file lock {path}"

    # ------------------------------------------------------------------ acquire, keep, release

    async def try_acquire(self) -> bool:
        """Take the lease if it is free (never waits); True when this learner holds it."""
        if self.held:
            return True
        with map_store_errors():
            if self.store.dialect == "postgresql":
                got = await self._try_postgres()
            else:
                got = self._try_file()
            if got:
                self.held = True
                self._last_check = time.monotonic()
                await self._record_holder()
        return self.held

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Wait until this learner holds the lease (True) or ``stopping`` is set (False)."""
        logged = False
        while not stopping.is_set():
            try:
                if await self.try_acquire():
                    return True
            except StoreUnavailable as exc:
                log.warning("learner lease: store unavailable (%s); retrying", exc)
            if not logged:
                log.warning(
                    "learner standby: another learner holds the lease of this store (%s); "
                    "taking over when it stops (checking every %.1fs)",
                    self.backend,
                    self.retry_s,
                )
                logged = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.retry_s)
        return False

    async def still_held(self) -> bool:
        """True while the lease is held; checks the PostgreSQL session every ``retry_s``."""
        if not self.held:
            return False
        if self._conn is None or time.monotonic() - self._last_check < self.retry_s:
            return True
        self._last_check = time.monotonic()
        try:
            await self._conn.execute(text("SELECT 1"))
        except Exception as exc:  # the session (and with it the lock) is gone
            log.error("learner lease lost: its database session failed (%s)", exc)
            await self.release()
            return False
        return True

    async def release(self) -> None:
        """Give the lease up (a standby can take over at once)."""
        self.held = False
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.execute(
                    text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key(self.store)}
                )
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ backends

    def _try_file(self) -> bool:
        path = lock_path(self.store)
        if path is None:
            return True
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def _try_postgres(self) -> bool:
        conn = await self.store.engine.connect()
        try:
            # Keepalives make the server notice a vanished host within about lease_s.
            idle = max(int(self.lease_s / 2), 1)
            for setting, value in (
                ("tcp_keepalives_idle", idle),
                ("tcp_keepalives_interval", 1),
                ("tcp_keepalives_count", idle),
            ):
                await conn.execute(text(f"SET {setting} = {int(value)}"))
            got = bool(
                await conn.scalar(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": advisory_key(self.store)}
                )
            )
            await conn.commit()
        except BaseException:
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    async def _record_holder(self) -> None:
        row = {
            "name": self.name,
            "holder": self.holder,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_ms": int(time.time() * 1000),
        }
        async with self.store.begin() as conn:
            stmt = self.store.insert(t.learner_lease)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={k: stmt.excluded[k] for k in row if k != "name"},
                ),
                row,
            )


def lock_path(store: Store) -> Path | None:
    """The SQLite lock file of a store (None for an in-memory database)."""
    database = make_url(store.url).database
    if not database or database == ":memory:":
        return None
    return Path(database + ".lease")


def advisory_key(store: Store) -> int:
    """A signed 64-bit advisory lock key for the store's database and schema."""
    url = make_url(store.url)
    ident = f"promptlab-learner:{url.host}:{url.port}:{url.database}:{store.schema or ''}"
    return int.from_bytes(
        hashlib.blake2b(ident.encode(), digest_size=8).digest(), "big", signed=True
    )


async def lease_status(store: Store, name: str = "learner") -> LeaseStatus:
    """Whether a learner is active on ``store`` now, and who (without taking the lease)."""
    probe = Lease(store, name=name)
    backend = probe.backend
    try:
        held = await _is_held(store)
        async with store.engine.connect() as conn:
            row = (
                await conn.execute(select(t.learner_lease).where(t.learner_lease.c.name == name))
            ).first()
    except Exception as exc:  # the stats command still prints the statistics
        log.warning("learner lease status unknown: %s", exc)
        return LeaseStatus("unknown", backend=backend)
    if not held:
        return LeaseStatus("free", backend=backend)
    if row is None:
        return LeaseStatus("active", backend=backend)
    return LeaseStatus(
        "active",
        holder=row.holder,
        host=row.host,
        pid=int(row.pid),
        acquired_ms=int(row.acquired_ms),
        backend=backend,
    )


async def _is_held(store: Store) -> bool:
    if store.dialect == "postgresql":
        key = advisory_key(store)
        async with store.engine.connect() as conn:
            count = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = :hi AND objid = :lo AND objsubid = 1"
                ),
                {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
            )
        return bool(count)
    path = lock_path(store)
    if path is None or not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return False
