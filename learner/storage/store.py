"""The learner's database: one async engine over SQLite (default) or PostgreSQL.

:class:`Store` owns the engine, creates the tables, and answers the read questions
that snapshots, the CLI and the admin API ask. The projection's writes happen in
:mod:`learner.projection.writes`, inside the one transaction per batch that
:mod:`learner.projection.transaction` opens.

PostgreSQL tables can live in their own schema (``Store(url, schema="x")``), which
tests and ``promptlab replay`` use for scratch copies; SQLAlchemy's
``schema_translate_map`` points every statement at it.
"""

from __future__ import annotations

import asyncio
import fcntl
import math
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from promptlab.learner.storage import schema as t
from promptlab.learner.storage.migrations import migrate
from promptlab.learner.storage.percentiles import nearest_rank_counts
from promptlab.learner.storage.schema import AGGREGATE_COLUMNS, MICRO, NANO

MIGRATION_LOCK = 0x706C6162
"""The PostgreSQL advisory lock a store's migration takes (``plab`` in ASCII)."""
LATENCY_BUCKET_BASE = 1.02
"""Width of a latency histogram bucket: each covers 2 % more than the previous one."""


class StoreError(Exception):
    """The learner's database cannot be used (unreachable, wrong URL, ...)."""


def latency_bucket(latency_ms: float) -> int:
    """Histogram bucket of a latency: ``ceil(log_1.02(1 + ms))``, 0 for 0 ms."""
    return max(0, math.ceil(math.log1p(max(latency_ms, 0.0)) / math.log(LATENCY_BUCKET_BASE)))


def bucket_upper_ms(bucket: int) -> float:
    """Upper edge of a latency bucket in milliseconds (what a percentile reports)."""
    return float(LATENCY_BUCKET_BASE**bucket - 1.0)


@dataclass(frozen=True, slots=True)
class ArmTotals:
    """Counters of one prompt x variant, over all data or over a window."""

    prompt_id: str
    variant: str
    executions: int = 0
    errors: int = 0
    rewarded: int = 0
    positive: int = 0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0
    cost_usd: float = 0.0
    tokens: int = 0
    latency_ms_sum: float = 0.0

    @classmethod
    def from_row(cls, prompt_id: str, variant: str, row: Any) -> ArmTotals:
        return cls.from_mapping(prompt_id, variant, row._mapping)

    @classmethod
    def from_mapping(cls, prompt_id: str, variant: str, m: Mapping[str, Any]) -> ArmTotals:
        """From counters named like the ``arm_stats`` columns (missing ones are 0)."""
        m = {name: m.get(name) for name in AGGREGATE_COLUMNS}
        return cls(
            prompt_id=prompt_id,
            variant=variant,
            executions=int(m["executions"] or 0),
            errors=int(m["errors"] or 0),
            rewarded=int(m["rewarded"] or 0),
            positive=int(m["positive"] or 0),
            reward_sum=int(m["reward_micro"] or 0) / MICRO,
            reward_sq_sum=int(m["reward_sq_micro"] or 0) / MICRO,
            cost_usd=int(m["cost_nano"] or 0) / NANO,
            tokens=int(m["tokens"] or 0),
            latency_ms_sum=int(m["latency_us"] or 0) / 1000.0,
        )

    @property
    def reward_mean(self) -> float | None:
        return self.reward_sum / self.rewarded if self.rewarded else None

    @property
    def error_rate(self) -> float:
        return self.errors / self.executions if self.executions else 0.0

    @property
    def cost_mean(self) -> float:
        return self.cost_usd / self.executions if self.executions else 0.0

    @property
    def tokens_mean(self) -> float:
        return self.tokens / self.executions if self.executions else 0.0


@asynccontextmanager
async def _file_lock(database: str | None) -> AsyncIterator[None]:
    """An exclusive ``flock`` on ``<database>.lock`` beside the SQLite file (nothing when
    None). Not on the database file itself: closing any descriptor of that file drops
    every ``fcntl`` lock the process holds on it, SQLite's own included."""
    if database is None:
        yield
        return
    fd = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class Store:
    """The learner's SQL database (SQLAlchemy async engine)."""

    def __init__(self, url: str, *, schema: str | None = None, echo: bool = False) -> None:
        self.url = url
        self.schema = schema
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreError(
                f"unsupported database {url!r}: use sqlite+aiosqlite or postgresql+asyncpg"
            )
        self._file: str | None = None
        """The SQLite file (None: PostgreSQL or an in-memory database)."""
        if self.dialect == "sqlite" and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self._file = parsed.database
        connect_args: dict[str, Any] = {}
        if self.dialect == "postgresql":
            # Names the learner's sessions in pg_stat_activity (operators, and the test
            # that makes the database fail under a running learner).
            connect_args["server_settings"] = {"application_name": self.application_name}
        engine = create_async_engine(
            url,
            echo=echo,
            connect_args=connect_args,
            # A session the server ended (restart, failover) is replaced, not reused.
            pool_pre_ping=self.dialect == "postgresql",
        )
        if self.dialect == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if schema is not None:
            if self.dialect != "postgresql":
                raise StoreError("a schema name is only supported on PostgreSQL")
            engine = engine.execution_options(schema_translate_map={None: schema})
        self.engine: AsyncEngine = engine

    @property
    def application_name(self) -> str:
        """``promptlab`` or ``promptlab:<schema>``: the PostgreSQL application name."""
        return "promptlab" if self.schema is None else f"promptlab:{self.schema}"[:63]

    # ------------------------------------------------------------------ lifecycle

    async def create(self) -> None:
        """Create the schema and tables when missing, or migrate a store of an earlier
        version in place (:mod:`learner.storage.migrations`); idempotent.

        Several processes may open one new store at once (the learner starting while
        ``promptlab stats`` reads): the migration runs under a lock that spans processes
        (PostgreSQL: a transaction-level advisory lock; SQLite: ``flock`` on a ``.lock``
        file beside the database), so one creates the tables and the others find them.
        """
        async with _file_lock(self._file), self.engine.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            if self.schema is not None:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            await conn.run_sync(migrate, self.schema)

    async def drop(self) -> None:
        """Drop every table (and the scratch schema, if any)."""
        async with self.engine.begin() as conn:
            if self.schema is not None:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            else:
                await conn.run_sync(t.metadata.drop_all)
                await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Store:
        await self.create()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed on normal exit, rolled back on an exception."""
        async with self.engine.begin() as conn:
            yield conn

    def insert(self, table: Table) -> Any:
        """A dialect-specific INSERT that supports ``on_conflict_do_*`` upserts."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # ------------------------------------------------------------------ reads

    async def position(self, consumer: str) -> int:
        """Last stream sequence applied by ``consumer`` (0 when none yet)."""
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(t.projection_position.c.sequence).where(
                    t.projection_position.c.consumer == consumer
                )
            )
        return int(value or 0)

    async def prompt_ids(self) -> list[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.prompt_state.c.prompt_id).order_by(t.prompt_state.c.prompt_id)
            )
        return [r[0] for r in rows]

    async def prompt_row(self, prompt_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(t.prompt_state).where(t.prompt_state.c.prompt_id == prompt_id)
                )
            ).first()
        return dict(row._mapping) if row is not None else None

    async def variant_rows(self, prompt_id: str) -> list[dict[str, Any]]:
        """Registered variants of a prompt, in registration order."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.variants)
                .where(t.variants.c.prompt_id == prompt_id)
                .order_by(t.variants.c.registered_sequence, t.variants.c.variant)
            )
        return [dict(r._mapping) for r in rows]

    async def reward_steps(self, prompt_id: str) -> list[tuple[int, str, float, float | None]]:
        """Every rewarded call of a prompt in the order its reward arrived:
        ``(feedback_sequence, variant, reward, routing probability)``."""
        e = t.executions
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(e.c.feedback_sequence, e.c.variant, e.c.reward, e.c.probability)
                .where(e.c.prompt_id == prompt_id, e.c.reward.is_not(None))
                .order_by(e.c.feedback_sequence, e.c.execution_id)
            )
        return [(int(r[0]), str(r[1]), float(r[2]), r[3]) for r in rows]

    async def champion_changes(self, prompt_id: str) -> list[tuple[int, str, str, str]]:
        """Promotions and rollbacks of a prompt in stream order:
        ``(sequence, type, new champion, reason)``."""
        d = t.decisions
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(d.c.sequence, d.c.type, d.c.variant, d.c.previous, d.c.reason)
                .where(d.c.prompt_id == prompt_id)
                .order_by(d.c.sequence)
            )
        out = []
        for seq, kind, variant, previous, reason in rows:
            if kind == "variant.promoted" and variant:
                out.append((int(seq), "promoted", str(variant), str(reason)))
            elif kind == "variant.rolled_back" and previous:
                out.append((int(seq), "rolled_back", str(previous), str(reason)))
        return out

    async def arm_totals(
        self, prompt_id: str, *, since_minute: int | None = None
    ) -> dict[str, ArmTotals]:
        """Counters per variant: all time, or from minute buckets since ``since_minute``."""
        async with self.engine.connect() as conn:
            if since_minute is None:
                rows = await conn.execute(
                    select(t.arm_stats).where(t.arm_stats.c.prompt_id == prompt_id)
                )
            else:
                mb = t.minute_buckets
                rows = await conn.execute(
                    select(
                        mb.c.prompt_id,
                        mb.c.variant,
                        *[func.sum(mb.c[name]).label(name) for name in AGGREGATE_COLUMNS],
                    )
                    .where(mb.c.prompt_id == prompt_id, mb.c.minute >= since_minute)
                    .group_by(mb.c.prompt_id, mb.c.variant)
                )
            return {r.variant: ArmTotals.from_row(prompt_id, r.variant, r) for r in rows}

    async def latency_percentiles(
        self, prompt_id: str, quantiles: Sequence[float] = (0.5, 0.95, 0.99)
    ) -> dict[str, list[float | None]]:
        """Latency percentiles per variant from the histogram (bucket upper edges)."""
        h = t.latency_histogram
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(h.c.variant, h.c.bucket, h.c.count)
                .where(h.c.prompt_id == prompt_id)
                .order_by(h.c.variant, h.c.bucket)
            )
            per_variant: dict[str, list[tuple[int, int]]] = {}
            for variant, bucket, count in rows:
                per_variant.setdefault(variant, []).append((int(bucket), int(count)))
        return {v: _percentiles(buckets, quantiles) for v, buckets in per_variant.items()}

    async def decision_rows(self, prompt_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """Most recent decisions of a prompt first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.decisions)
                .where(t.decisions.c.prompt_id == prompt_id)
                .order_by(t.decisions.c.sequence.desc())
                .limit(limit)
            )
        return [dict(r._mapping) for r in rows]

    async def trend(
        self, prompt_id: str, since_minute: int
    ) -> list[tuple[int, str, int, int, float]]:
        """``(minute, variant, executions, rewarded, reward_sum)`` since a minute, oldest first."""
        mb = t.minute_buckets
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(mb.c.minute, mb.c.variant, mb.c.executions, mb.c.rewarded, mb.c.reward_micro)
                .where(mb.c.prompt_id == prompt_id, mb.c.minute >= since_minute)
                .order_by(mb.c.minute, mb.c.variant)
            )
        return [(int(m), v, int(n), int(r), int(s) / MICRO) for m, v, n, r, s in rows]

    async def outbox_rows(self) -> list[tuple[str, str, bytes]]:
        """Decisions written but not yet seen back on the stream: ``(event_id, prompt, data)``."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.outbox.c.event_id, t.outbox.c.prompt_id, t.outbox.c.data)
            )
        return [(r[0], r[1], bytes(r[2])) for r in rows]

    async def dump(self, table: Table) -> list[tuple[Any, ...]]:
        """Every row of a table, ordered by primary key (for replay comparison)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
        return [tuple(r) for r in rows]


def _percentiles(buckets: list[tuple[int, int]], quantiles: Sequence[float]) -> list[float | None]:
    """Nearest-rank quantiles of a variant's latency histogram (bucket upper edges)."""
    edges = [(round(bucket_upper_ms(bucket), 3), count) for bucket, count in buckets]
    return [nearest_rank_counts(edges, q) for q in quantiles]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (stats CLI, snapshots) run while the projection writes.
    #
    # synchronous=NORMAL: in WAL mode a commit survives a crash of the process (the
    # SIGKILL test) but the last transactions can be lost on a power cut or an OS crash,
    # after the learner acked them. That is safe here because the stream, not the
    # database, is the source of truth and the database carries its own cursor:
    # Learner.start() loads projection_position and *recreates* the durable consumer at
    # position + 1 (Learner._open_consumer(recreate=True)), so whatever a lost
    # transaction held is read from the stream again and applied exactly once; replay
    # (learner/replay.py) starts from the database's position too. Two consequences, both
    # absorbed by "decisions take effect only when they come back through the stream":
    # decisions and dead letters published after a lost commit may be published again
    # (decision ids are deterministic; a second copy of a decision already applied moves
    # no prompt state and is only logged in `decisions`, identically on replay), and KV
    # snapshots may briefly be ahead of the database. FULL fsyncs the WAL on every
    # commit, one per batch, which a replay of a long stream pays thousands of times.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
