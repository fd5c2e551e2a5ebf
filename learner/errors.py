"""The learner's own errors, and the mapping of database errors onto them.

The projection and the lease talk to SQLAlchemy drivers that raise their own exception
trees (``sqlite3``, ``asyncpg``, ``OSError`` for a lost socket). At the learner's
boundary they become one of two kinds, which decide what the service does:

* :class:`StoreUnavailable`: the database cannot be used *now* (locked, restarting,
  connection lost, disk full). Nothing is wrong with the events: the whole batch is
  retried with backoff, never dead-lettered.
* :class:`StoreRejected`: the database refused what a statement wrote (a constraint, a
  value too long for a column). That may be the fault of one event, so the service
  looks for it; an event the database rejects *alone, twice*, is dead-lettered with the
  reason.

Events that cannot be decoded never reach the database: the projection dead-letters
them itself (the only other deterministic failure).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa


class LearnerError(Exception):
    """Base of the learner's errors."""


class StoreUnavailable(LearnerError):
    """The database cannot be used now; retry later (transient)."""


class StoreRejected(LearnerError):
    """The database refused a write (integrity or data error): maybe one event's fault."""


_REJECTED = (sa.IntegrityError, sa.DataError)


def classify(exc: BaseException) -> LearnerError | None:
    """Our error for a database (or socket) exception; None for anything else."""
    if isinstance(exc, LearnerError):
        return exc
    if isinstance(exc, _REJECTED):
        return StoreRejected(f"{type(exc).__name__}: {exc.orig if exc.orig is not None else exc}")
    if isinstance(exc, (sa.DBAPIError, sa.OperationalError, sa.InterfaceError, sa.TimeoutError)):
        return StoreUnavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (OSError, ConnectionError, TimeoutError)):
        return StoreUnavailable(f"{type(exc).__name__}: {exc}")
    name = type(exc).__module__.split(".")[0]
    if name in ("asyncpg", "sqlite3", "aiosqlite"):  # a driver error SQLAlchemy did not wrap
        return StoreUnavailable(f"{type(exc).__name__}: {exc}")
    return None


@contextmanager
def map_store_errors() -> Iterator[None]:
    """Re-raise database errors as :class:`StoreUnavailable` / :class:`StoreRejected`."""
    try:
        yield
    except LearnerError:
        raise
    except Exception as exc:
        mapped = classify(exc)
        if mapped is None:
            raise
        raise mapped from exc
